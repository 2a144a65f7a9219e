"""Faults and bad input: each refused with a clear error, or survived, and nothing lost."""

import copy
import re
import sys

import pytest
import torch

from hidlr import HiDLR, ProbeError
from tests.optim.conftest import make_quadratic


def _groups(q):
    return [{"params": [p], "name": f"g{i}"} for i, p in enumerate(q.params)]


def _snapshot(q, opt):
    return q.flat(), copy.deepcopy(opt.state_dict())


def _assert_unchanged(q, opt, snap, exact_weights=True):
    w, sd = snap
    if exact_weights:
        assert torch.equal(q.flat(), w)
    else:  # moved back along the stored update: equal up to rounding
        torch.testing.assert_close(q.flat(), w, rtol=0, atol=1e-14)
    now = opt.state_dict()
    assert now["hidlr"] == sd["hidlr"]
    assert now["base"]["param_groups"] == sd["base"]["param_groups"]
    for key, st_ in sd["base"]["state"].items():
        for name, v in st_.items():
            assert torch.equal(torch.as_tensor(now["base"]["state"][key][name]), torch.as_tensor(v))


def _warm(q, opt, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)


def test_refresh_step_without_probe_is_an_error_that_changes_nothing():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=2)
    _warm(q, opt, 2)
    opt.zero_grad()
    q.loss().backward()
    snap = _snapshot(q, opt)
    with pytest.raises(ValueError, match="refresh step and needs a probe"):
        opt.step()
    _assert_unchanged(q, opt, snap)
    opt.step(probe=q.loss)  # still usable
    assert opt.step_count == 3


def test_default_probe_is_used_when_step_gets_none():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD(_groups(q), lr=0.01), every=1, probe=q.loss)
    _warm(q, opt, 1)
    q.params[0].grad = None
    q.loss().backward()
    opt.step()
    assert len(opt.history) == 2


@pytest.mark.parametrize("fail_at", [1, 4, 12])
def test_with_rollback_a_probe_that_raises_leaves_weights_and_state_as_before(fail_at):
    q = make_quadratic([3, 2], seed=3)
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=2, rollback=True)
    _warm(q, opt, 2)
    opt.zero_grad()
    q.loss().backward()
    snap = _snapshot(q, opt)
    calls = []

    def probe():
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyError("data ran out")
        return q.loss()

    with pytest.raises(KeyError, match="data ran out"):
        opt.step(probe=probe)
    _assert_unchanged(q, opt, snap)  # bitwise: the weights are restored from a copy
    opt.step(probe=q.loss)
    assert opt.step_count == 3


def test_probe_must_return_a_scalar():
    q = make_quadratic([2])
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.01))
    q.loss().backward()
    snap = _snapshot(q, opt)
    with pytest.raises(ProbeError, match="scalar loss"):
        opt.step(probe=lambda: torch.ones(3))
    _assert_unchanged(q, opt, snap)


def test_non_finite_probe_loss_skips_that_group_and_completes_at_previous_rates():
    q = make_quadratic([3, 2], seed=6)
    ref_q = copy.deepcopy(q)
    opt = HiDLR(torch.optim.SGD(_groups(q), lr=0.02), every=1, joint=False)
    ref = torch.optim.SGD(_groups(ref_q), lr=0.02)
    calls = []

    def probe():  # call 1 is L(w); calls 2-5 probe group 0, 6-9 group 1
        calls.append(1)
        return torch.tensor(float("nan")) if len(calls) == 7 else q.loss()

    q.loss().backward()
    with pytest.warns(RuntimeWarning, match="non-finite probe loss"):
        opt.step(probe=probe)
    groups = opt.history[-1]["groups"]
    assert groups[0]["accepted"] and not groups[1]["accepted"]
    assert groups[1]["reason"] == "non-finite probe loss" and opt.lrs[1] == 0.02
    ref_q.loss().backward()
    for g, r in zip(ref.param_groups, opt.lrs):
        g["lr"] = r
    ref.step()
    torch.testing.assert_close(q.flat(), ref_q.flat(), rtol=1e-12, atol=1e-14)


def test_non_finite_gradient_is_refused_before_any_weight_changes():
    q = make_quadratic([3, 2])
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=1)
    _warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    q.params[1].grad[0] = float("inf")
    snap = _snapshot(q, opt)
    with pytest.raises(FloatingPointError, match="param group 'g1'"):
        opt.step(probe=q.loss)
    _assert_unchanged(q, opt, snap)


@pytest.mark.parametrize("check_finite", ["refresh", True, False])
def test_non_finite_gradient_on_a_step_that_does_not_refresh(check_finite):
    q = make_quadratic([3, 2])
    opt = HiDLR(torch.optim.SGD(_groups(q), lr=0.01), every=3, check_finite=check_finite)
    _warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    q.params[0].grad[1] = float("nan")
    snap = _snapshot(q, opt)
    assert not opt.is_refresh_step()
    if check_finite is True:  # every step is checked
        with pytest.raises(FloatingPointError, match="param group 'g0'"):
            opt.step(probe=q.loss)
        _assert_unchanged(q, opt, snap)
    else:  # handed to the base optimizer as they are, as the bare optimizer takes them
        opt.step(probe=q.loss)
        assert torch.isnan(q.params[0][1]) and opt.step_count == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "lbfgs"}, "mode must be"),
        ({"every": 0}, "every must be"),
        ({"probes": (1.0, 2.0)}, "at least 3 distinct"),
        ({"probes": (0.0, 1.0, 2.0)}, "non-zero"),
        ({"ema": 1.0}, "ema must be"),
        ({"clip": (2.0, 3.0)}, "clip must be"),
        ({"design": "grid"}, "design must be"),
        ({"horizon": 2.0}, "horizon must be"),
        ({"shrink": 1.5}, "shrink must be"),
        ({"shrink": "half"}, "shrink must be"),
        ({"first_clip": (2.0, 3.0)}, "clip must be"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    q = make_quadratic([2])
    with pytest.raises(ValueError, match=match):
        HiDLR(torch.optim.SGD(q.params, lr=0.1), **kwargs)


def test_wrapping_something_else_is_an_error():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        HiDLR(object())
    q = make_quadratic([2])
    with pytest.raises(TypeError, match="another HiDLR"):
        HiDLR(HiDLR(torch.optim.SGD(q.params, lr=0.1)))


def test_parameter_in_two_groups_is_an_error():
    q = make_quadratic([2])
    with pytest.raises(ValueError, match="more than one parameter group"):
        HiDLR(torch.optim.SGD([{"params": q.params}, {"params": q.params}], lr=0.1))


# ------------------------------------------------------------------------- duplicate params
@pytest.mark.filterwarnings("ignore:optimizer contains a parameter group with duplicate parameters")
def test_same_parameter_twice_in_one_group_is_refused():
    q = make_quadratic([2, 3])
    with pytest.raises(ValueError, match="appears twice in param group 0"):
        HiDLR(torch.optim.SGD([{"params": [q.params[0], q.params[0]]}], lr=0.1))


def test_add_param_group_refuses_duplicates_and_changes_nothing():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD([{"params": [q.params[0]]}], lr=0.1))
    with pytest.raises(ValueError, match="appears twice in the new param group"):
        opt.add_param_group({"params": [q.params[1], q.params[1]]})
    with pytest.raises(ValueError, match="already in param group 0"):
        opt.add_param_group({"params": [q.params[1], q.params[0]]})
    assert len(opt.param_groups) == 1 and opt.lrs == [0.1]
    opt.add_param_group({"params": [q.params[1]], "lr": 0.2})
    assert opt.lrs == [0.1, 0.2]


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
    clean = HiDLR(make(_groups(clean_q)), every=1, mode=mode, groups_per_refresh=per_refresh, rollback=True)
    flaky = HiDLR(make(_groups(flaky_q)), every=1, mode=mode, groups_per_refresh=per_refresh, rollback=True)
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
    ref = make(_groups(q), lr=lrs[0])
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
    opt = HiDLR(make[base](_groups(q)), every=1, groups_per_refresh=per_refresh)
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
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=1)
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
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=1)
    q.loss().backward()

    def probe():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        opt.step(probe=probe)  # fails at the first call: before the base step, nothing to complete
    assert opt.step_count == 0 and opt.state_dict()["base"]["state"] == {}
    assert torch.equal(q.flat(), make_quadratic([3, 2], seed=3).flat())
    opt.step(probe=q.loss)  # not taken for a retry: nothing had been applied
    assert opt.step_count == 1 and opt.refresh_count == 1


# ------------------------------------------------------------------------------ bad rates
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_rate_set_by_hand_is_refused_before_anything_changes(bad):
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD(_groups(q), lr=0.01), every=1)
    _warm(q, opt, 1)
    opt.param_groups[1]["lr"] = bad
    opt.zero_grad()
    q.loss().backward()
    w = q.flat()
    with pytest.raises(ValueError, match="param group 'g1'.*rate"):
        opt.step(probe=q.loss)
    assert torch.equal(q.flat(), w) and opt.step_count == 1
    opt.param_groups[1]["lr"] = 0.01
    opt.step(probe=q.loss)
    assert opt.step_count == 2


def test_negative_rate_from_a_scheduler_is_refused():
    q = make_quadratic([2])
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.01), every=3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 - t)  # negative from t = 2
    for _ in range(2):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
        sched.step()
    w = q.flat()
    opt.zero_grad()
    q.loss().backward()
    with pytest.raises(ValueError, match="negative"):
        opt.step(probe=q.loss)
    assert torch.equal(q.flat(), w)


# --------------------------------------------------------------------------- sparse grads
def _sparse_model():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 4, sparse=True)
    head = torch.nn.Linear(4, 1)
    idx = torch.tensor([1, 3, 3, 7])
    target = torch.randn(4, 1)

    def loss():
        return ((head(emb(idx)) - target) ** 2).mean()

    return emb, head, loss


def test_sparse_gradients_are_stepped_and_checked():
    emb, head, loss = _sparse_model()
    opt = HiDLR(torch.optim.SGD([{"params": emb.parameters()}, {"params": head.parameters()}], lr=0.05), every=1)
    first = float(loss().detach())
    for _ in range(5):
        opt.zero_grad()
        loss().backward()
        opt.step(probe=loss)
    assert float(loss().detach()) < first and len(opt.history) == 5
    opt.zero_grad()
    loss().backward()
    emb.weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[1]]), torch.full((1, 4), float("nan")), (10, 4), check_invariants=True
    )
    w = emb.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="param group '0'"):
        opt.step(probe=loss)
    assert torch.equal(emb.weight.detach(), w)


# ------------------------------------------------------------------------------ bad probes
@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "None"),
        ("0.3", "str"),
        (torch.ones(3), "shape (3,)"),
        (torch.tensor(float("nan")), "nan"),
        (float("inf"), "inf"),
        (True, "bool"),
        ([0.1], "list"),
        (torch.tensor(1 + 2j), "complex"),
    ],
)
def test_bad_probe_values_are_probe_errors_that_change_nothing(value, shown):
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.Adam(_groups(q), lr=0.01), every=1)
    _warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    snap = _snapshot(q, opt)
    with pytest.raises(ProbeError, match=re.escape(shown)):
        opt.step(probe=lambda: value)
    _assert_unchanged(q, opt, snap)
    opt.step(probe=q.loss)
    assert opt.step_count == 2


def test_probe_returning_a_python_float_or_numpy_scalar_is_accepted():
    import numpy as np

    q = make_quadratic([2])
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.01), every=1)
    for wrap in (float, np.float32):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=lambda w=wrap: w(q.loss().item()))
    assert len(opt.history) == 2


# ------------------------------------------------------------------------------ bad options
BAD_OPTIONS = [
    ("probes", "abc", TypeError),
    ("probes", 3, TypeError),
    ("probes", (1.0, "x", 2.0), TypeError),
    ("probes", (1.0, float("nan"), 2.0, 3.0), ValueError),
    ("probes", (1.0, 2.0), ValueError),
    ("clip", 2.0, TypeError),
    ("clip", (0.5,), TypeError),
    ("clip", (0.5, "2"), TypeError),
    ("clip", (0.5, float("nan")), ValueError),
    ("clip", (0.5, float("inf")), ValueError),
    ("clip", (2.0, 3.0), ValueError),
    ("ema", "0.3", TypeError),
    ("ema", True, TypeError),
    ("ema", float("nan"), ValueError),
    ("ema", -0.1, ValueError),
    ("ema", 1.0, ValueError),
    ("min_r2", 1.5, ValueError),
    ("min_r2", -0.1, ValueError),
    ("min_r2", float("nan"), ValueError),
    ("min_r2", "0.9", TypeError),
    ("horizon", 2.0, ValueError),
    ("horizon", float("nan"), ValueError),
    ("horizon", "half", TypeError),
    ("seed", 1.5, TypeError),
    ("seed", -1, ValueError),
    ("seed", True, TypeError),
    ("seed", 2**40, ValueError),
    ("every", True, TypeError),
    ("every", 0, ValueError),
    ("every", 2.0, TypeError),
    ("every", "often", ValueError),
    ("max_every", 0, ValueError),
    ("max_every", 2.5, TypeError),
    ("max_every", False, TypeError),
    ("joint", 1, TypeError),
    ("joint", "yes", TypeError),
    ("check_finite", 1, TypeError),
    ("check_finite", None, TypeError),
    ("check_finite", "always", ValueError),
    ("rollback", "no", TypeError),
    ("mode", "lbfgs", ValueError),
    ("mode", None, ValueError),
    ("design", "grid", ValueError),
    ("design", 1, ValueError),
    ("probe", 3, TypeError),
    ("history_size", -1, ValueError),
    ("history_size", 1.0, TypeError),
]


@pytest.mark.parametrize("name, value, error", BAD_OPTIONS, ids=[f"{n}={v!r}" for n, v, _ in BAD_OPTIONS])
def test_bad_arguments_are_refused_naming_the_argument(name, value, error):
    q = make_quadratic([2])
    with pytest.raises(error, match=name):
        HiDLR(torch.optim.SGD(q.params, lr=0.1), **{name: value})


@pytest.mark.parametrize(
    "name, value",
    [
        ("min_r2", 0),
        ("min_r2", 1),
        ("ema", 0),
        ("every", 5),
        ("max_every", None),
        ("joint", False),
        ("horizon", 1),
        ("probes", [1, 2, 3]),
        ("clip", [0.25, 4]),
        ("seed", 7),
    ],
)
def test_good_arguments_are_accepted(name, value):
    q = make_quadratic([2])
    HiDLR(torch.optim.SGD(q.params, lr=0.1), **{name: value})
