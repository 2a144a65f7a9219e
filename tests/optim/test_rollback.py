"""What a probe that raises mid-refresh leaves behind: by default the step completed at the current
rates (and a retry with the same gradients skipped), with ``rollback=True`` the weights and the
optimizer state bitwise as before the step."""

import sys

import pytest
import torch

from hidlr import HiDLR
from tests.optim.conftest import assert_unchanged, group_per_param, make_quadratic, snapshot, warm


@pytest.mark.parametrize("fail_at", [1, 4, 12])
def test_with_rollback_a_probe_that_raises_leaves_weights_and_state_as_before(fail_at):
    q = make_quadratic([3, 2], seed=3)
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=2, rollback=True)
    warm(q, opt, 2)
    opt.zero_grad()
    q.loss().backward()
    snap = snapshot(q, opt)
    calls = []

    def probe():
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyError("data ran out")
        return q.loss()

    with pytest.raises(KeyError, match="data ran out"):
        opt.step(probe=probe)
    assert_unchanged(q, opt, snap)  # bitwise: the weights are restored from a copy
    opt.step(probe=q.loss)
    assert opt.step_count == 3


# ------------------------------------------------------------------------------ rollback
@pytest.mark.parametrize(
    "base, mode, per_refresh",
    [
        ("adam", "diag", None),
        ("adam", "full", None),
        ("momentum", "diag", None),
        ("momentum", "full", None),
        ("adam", "diag", 1),
    ],
)
def test_with_rollback_retried_steps_after_raising_probes_follow_the_clean_run_bitwise(base, mode, per_refresh):
    make = {
        "adam": lambda g: torch.optim.Adam(g, lr=0.01),
        "momentum": lambda g: torch.optim.SGD(g, lr=0.02, momentum=0.9),
    }[base]
    clean_q, flaky_q = make_quadratic([3, 2, 2], seed=4), make_quadratic([3, 2, 2], seed=4)
    clean = HiDLR(make(group_per_param(clean_q)), every=1, mode=mode, groups_per_refresh=per_refresh, rollback=True)
    flaky = HiDLR(make(group_per_param(flaky_q)), every=1, mode=mode, groups_per_refresh=per_refresh, rollback=True)
    calls = [0]

    def flaky_probe():
        calls[0] += 1
        if calls[0] in (3, 25, 26, 60):
            raise RuntimeError("transient")
        return flaky_q.loss()

    for _ in range(12):
        clean.zero_grad()
        clean_q.loss().backward()
        clean.step(probe=clean_q.loss)
        flaky.zero_grad()
        flaky_q.loss().backward()
        while True:
            try:
                flaky.step(probe=flaky_probe)
                break
            except RuntimeError:
                pass
    assert torch.equal(clean_q.flat(), flaky_q.flat())
    assert clean.lrs == flaky.lrs


def _plain_step(q, lrs, base="adam", steps_before=0):
    """The weights and state after ``steps_before`` plain steps and one more at ``lrs``."""
    make = {"adam": torch.optim.Adam, "sgd": lambda g, lr: torch.optim.SGD(g, lr=lr, momentum=0.9)}[base]
    ref = make(group_per_param(q), lr=lrs[0])
    for g, r in zip(ref.param_groups, lrs):
        g["lr"] = r
    for _ in range(steps_before + 1):
        ref.zero_grad()
        q.loss().backward()
        ref.step()
    return q.flat(), ref.state_dict()


@pytest.mark.parametrize("fail_at", [2, 4, 9])
@pytest.mark.parametrize("per_refresh", [None, 1])
@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_by_default_a_probe_that_raises_completes_the_step_at_the_current_rates(fail_at, per_refresh, base):
    make = {"adam": lambda g: torch.optim.Adam(g, lr=0.01), "sgd": lambda g: torch.optim.SGD(g, lr=0.01, momentum=0.9)}
    q, ref_q = make_quadratic([3, 2, 2], seed=3), make_quadratic([3, 2, 2], seed=3)
    opt = HiDLR(make[base](group_per_param(q)), every=1, groups_per_refresh=per_refresh)
    calls = []

    def probe():
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyError("data ran out")
        return q.loss()

    q.loss().backward()
    with pytest.raises(KeyError, match="data ran out") as info:
        opt.step(probe=probe)
    if sys.version_info >= (3, 11):  # exception notes
        assert any("completed at the current rates" in n for n in info.value.__notes__)
    w, ref_state = _plain_step(ref_q, [0.01] * 3, base)
    torch.testing.assert_close(q.flat(), w, rtol=0, atol=1e-15)  # the base step's weights, up to rounding
    now = opt.state_dict()["base"]["state"]
    for key, st_ in ref_state["state"].items():  # the base optimizer's state of that step, bitwise
        for name, v in st_.items():
            assert torch.equal(torch.as_tensor(now[key][name]), torch.as_tensor(v))
    assert opt.step_count == 1 and opt.refresh_count == 0 and opt.lrs == [0.01] * 3
    assert opt.is_refresh_step()  # the refresh is retried at the next step
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    assert opt.step_count == 2 and opt.refresh_count == 1


def test_by_default_a_retry_with_the_same_gradients_is_skipped_not_applied_twice():
    q, ref_q = make_quadratic([3, 2], seed=5), make_quadratic([3, 2], seed=5)
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=1)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("transient")
        return q.loss()

    q.loss().backward()
    with pytest.raises(RuntimeError, match="transient"):
        opt.step(probe=flaky)
    w, _ = _plain_step(ref_q, [0.01, 0.01])
    with pytest.warns(RuntimeWarning, match="already applied these gradients"):
        opt.step(probe=flaky)  # the retry: same gradients, nothing happens
    assert opt.step_count == 1
    torch.testing.assert_close(q.flat(), w, rtol=0, atol=1e-15)
    for p in q.params:  # gradients changed in place (accumulated): a new step, applied
        p.grad.mul_(0.5)
    opt.step(probe=q.loss)
    assert opt.step_count == 2 and opt.refresh_count == 1
    assert not torch.allclose(q.flat(), w)


def test_by_default_a_probe_that_raises_at_the_unmoved_weights_changes_nothing():
    q = make_quadratic([3, 2], seed=3)
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=1)
    q.loss().backward()

    def probe():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        opt.step(probe=probe)  # fails at the first call: before the base step, nothing to complete
    assert opt.step_count == 0 and opt.state_dict()["base"]["state"] == {}
    assert torch.equal(q.flat(), make_quadratic([3, 2], seed=3).flat())
    opt.step(probe=q.loss)  # not taken for a retry: nothing had been applied
    assert opt.step_count == 1 and opt.refresh_count == 1
