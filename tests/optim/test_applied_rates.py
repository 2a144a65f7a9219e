"""The rate each step applies: the estimates times a scheduler's factor, tensor rates, and every
change made between steps (by hand, by a scheduler, by a step budget's anneal)."""

import warnings

import pytest
import torch

from hidlr import HiDLR
from tests.optim.conftest import group_per_param, make_quadratic


def test_lambda_scheduler_multiplies_the_estimates():
    q = make_quadratic([3, 2], seed=8)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.02), every=4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(9):
            before = q.flat()
            opt.zero_grad()
            q.loss().backward()
            grad = torch.cat([p.grad.reshape(-1) for p in q.params]).clone()
            refresh = opt.is_refresh_step()
            opt.step(probe=q.loss)
            applied = opt.lrs
            assert applied == pytest.approx([e / (1 + t) for e in opt.estimates])
            if not refresh:  # plain SGD: the weights moved by exactly the applied rates
                rates = torch.repeat_interleave(torch.tensor(applied, dtype=torch.float64), torch.tensor([3, 2]))
                torch.testing.assert_close(before - q.flat(), rates * grad)
            sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02 / 10] * 2)


def test_cosine_scheduler_keeps_its_own_recursion():
    q = make_quadratic([2, 2], seed=9)
    opt = HiDLR(torch.optim.Adam(group_per_param(q), lr=0.01), every=3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    bare_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    bare = torch.optim.lr_scheduler.CosineAnnealingLR(bare_opt, T_max=10)
    for _ in range(10):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
        sched.step()
        bare.optimizer.step()
        bare.step()
        factor = bare.get_last_lr()[0] / 0.01
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([bare.get_last_lr()[0]] * 2)
        assert opt.lrs == pytest.approx([e * factor for e in opt.estimates])


def test_tensor_rates_are_read_and_restored():
    q = make_quadratic([2, 3], seed=4)
    groups = group_per_param(q)
    base = torch.optim.Adam(groups, lr=torch.tensor(0.01))
    opt = HiDLR(base, every=2)
    for _ in range(4):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    assert all(isinstance(g["lr"], torch.Tensor) for g in opt.param_groups)  # the user's tensors kept
    assert opt.refresh_count == 2 and all(r > 0 for r in opt.lrs)


def _sgd_rates(q, opt) -> torch.Tensor:
    """One step of ``opt`` (plain SGD inside) on ``q``; the rate it applied to each entry."""
    before = q.flat()
    opt.zero_grad()
    q.loss().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in q.params]).clone()
    opt.step(probe=q.loss)
    return (before - q.flat()) / grad


def test_the_applied_rate_follows_every_change_between_steps():
    """Float rates are reused between refreshes while nothing they depend on changed; every change
    (a rate set by hand, ``initial_lr``, the original rate, the anneal of a step budget) takes effect
    at the next step, and a negative rate is still refused."""
    q = make_quadratic([3, 2], seed=11)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.02), every=10_000)
    _sgd_rates(q, opt)  # the refresh at step 0
    e0, e1 = opt.estimates
    expected = torch.tensor([e0] * 3 + [e1] * 2, dtype=torch.float64)
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
    torch.testing.assert_close(_sgd_rates(q, opt), expected)  # reused: the same
    opt.param_groups[0]["lr"] = 0.01  # by hand: half the rate's initial value
    expected[:3] = e0 / 2
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
    opt.param_groups[1]["initial_lr"] = 0.005  # the scheduler's reference: the factor is now 4
    expected[3:] = 4 * e1
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
    opt._wrap_lrs = [0.005, 0.02]  # group 0's original rate (no initial_lr), as a checkpoint load sets it
    expected[:3] = 2 * e0  # 0.01 / 0.005
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
    opt._wrap_lrs = [0.02, 0.02]
    expected[:3] = e0 / 2
    total = opt.total_steps = opt.step_count + 2  # the anneal: rates fall over the last fifth of it
    for t in (total - 2, total - 1):
        factor = min(1.0, (total - t) / (0.2 * total))
        torch.testing.assert_close(_sgd_rates(q, opt), expected * factor)
    assert factor < 1
    opt.total_steps = None
    opt.param_groups[0]["lr"] = -0.01
    snap = q.flat()
    opt.zero_grad()
    q.loss().backward()
    with pytest.raises(ValueError, match="'g0' has a negative rate"):
        opt.step(probe=q.loss)
    assert torch.equal(q.flat(), snap)


def test_a_tensor_rate_changed_in_place_takes_effect_at_the_next_step():
    q = make_quadratic([3, 2], seed=12)
    groups = group_per_param(q)
    groups[1]["lr"] = torch.tensor(0.02)
    opt = HiDLR(torch.optim.SGD(groups, lr=0.02), every=10_000)
    _sgd_rates(q, opt)  # the refresh at step 0
    e0, e1 = opt.estimates
    expected = torch.tensor([e0] * 3 + [e1] * 2, dtype=torch.float64)
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
    opt.param_groups[1]["lr"].fill_(0.04)  # the same tensor, another value
    expected[3:] = 2 * e1
    torch.testing.assert_close(_sgd_rates(q, opt), expected)
