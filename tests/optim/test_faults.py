"""Faults and bad input: each refused with a clear error, or survived, and nothing lost."""

import copy
import re

import pytest
import torch

from hidlr import HiDLR, ProbeError
from tests.optim.conftest import assert_unchanged, group_per_param, make_quadratic, snapshot, warm


def test_refresh_step_without_probe_is_an_error_that_changes_nothing():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=2)
    warm(q, opt, 2)
    opt.zero_grad()
    q.loss().backward()
    snap = snapshot(q, opt)
    with pytest.raises(ValueError, match="refresh step and needs a probe"):
        opt.step()
    assert_unchanged(q, opt, snap)
    opt.step(probe=q.loss)  # still usable
    assert opt.step_count == 3


def test_default_probe_is_used_when_step_gets_none():
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=1, probe=q.loss)
    warm(q, opt, 1)
    q.params[0].grad = None
    q.loss().backward()
    opt.step()
    assert len(opt.history) == 2


def test_probe_must_return_a_scalar():
    q = make_quadratic([2])
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.01))
    q.loss().backward()
    snap = snapshot(q, opt)
    with pytest.raises(ProbeError, match="scalar loss"):
        opt.step(probe=lambda: torch.ones(3))
    assert_unchanged(q, opt, snap)


def test_non_finite_probe_loss_skips_that_group_and_completes_at_previous_rates():
    q = make_quadratic([3, 2], seed=6)
    ref_q = copy.deepcopy(q)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.02), every=1, joint=False)
    ref = torch.optim.SGD(group_per_param(ref_q), lr=0.02)
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
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=1)
    warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    q.params[1].grad[0] = float("inf")
    snap = snapshot(q, opt)
    with pytest.raises(FloatingPointError, match="param group 'g1'"):
        opt.step(probe=q.loss)
    assert_unchanged(q, opt, snap)


@pytest.mark.parametrize("check_finite", ["refresh", True, False])
def test_non_finite_gradient_on_a_step_that_does_not_refresh(check_finite):
    q = make_quadratic([3, 2])
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=3, check_finite=check_finite)
    warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    q.params[0].grad[1] = float("nan")
    snap = snapshot(q, opt)
    assert not opt.is_refresh_step()
    if check_finite is True:  # every step is checked
        with pytest.raises(FloatingPointError, match="param group 'g0'"):
            opt.step(probe=q.loss)
        assert_unchanged(q, opt, snap)
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
        ({"first_clip": (2.0, 3.0)}, "first_clip must be"),
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
    with pytest.raises(TypeError, match="cannot wrap LBFGS"):
        HiDLR(torch.optim.LBFGS(q.params))


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


def test_mixed_maximize_flags_are_refused_naming_the_groups_and_add_param_group_changes_nothing():
    q = make_quadratic([2, 3])
    mixed = [{"params": [q.params[0]], "name": "up", "maximize": True}, {"params": [q.params[1]], "name": "down"}]
    with pytest.raises(ValueError, match=r"\['up'\] have maximize=True and \['down'\] do not"):
        HiDLR(torch.optim.Adam(mixed, lr=0.1))
    opt = HiDLR(torch.optim.Adam([q.params[0]], lr=0.1))
    with pytest.raises(ValueError, match="same maximize flag"):
        opt.add_param_group({"params": [q.params[1]], "maximize": True})
    assert len(opt.param_groups) == 1 and opt.lrs == [0.1]
    opt.add_param_group({"params": [q.params[1]]})
    opt.param_groups[0]["maximize"] = True  # by hand: refused at the next refresh, nothing moved
    opt.zero_grad()
    q.loss().backward()
    before = snapshot(q, opt)
    assert opt.is_refresh_step()
    with pytest.raises(ValueError, match="same maximize flag"):
        opt.step(probe=q.loss)
    assert_unchanged(q, opt, before)


# ------------------------------------------------------------------------------ bad rates
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_rate_set_by_hand_is_refused_before_anything_changes(bad):
    q = make_quadratic([2, 3])
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=1)
    warm(q, opt, 1)
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
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=1)
    warm(q, opt, 1)
    opt.zero_grad()
    q.loss().backward()
    snap = snapshot(q, opt)
    with pytest.raises(ProbeError, match=re.escape(shown)):
        opt.step(probe=lambda: value)
    assert_unchanged(q, opt, snap)
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
