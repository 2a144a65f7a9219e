"""A known step budget (``total_steps``): rates may grow only during its first ``grow_window``, and
fall to 0 over its last ``anneal``."""

import warnings

import pytest
import torch

from hidlr import HiDLR
from hidlr.optim import rules, schedule
from tests.optim.conftest import group_per_param, make_quadratic


def test_may_grow_inside_the_window_of_a_known_budget_or_until_arrival():
    assert schedule.may_grow(rules.RuleConfig(), 10**9, arrived=True)
    cfg = rules.RuleConfig(total_steps=100, grow_window=0.25)
    assert schedule.may_grow(cfg, 24, arrived=True)
    assert not schedule.may_grow(cfg, 25, arrived=True)
    assert schedule.may_grow(cfg, 90, arrived=False)  # still travelling up from a far too small start


def test_growth_config_caps_the_clip_at_one_past_the_window():
    cfg = rules.RuleConfig(clip=(0.5, 2.0), total_steps=100, grow_window=0.25)
    assert schedule.growth_config(cfg, 10, arrived=True) == cfg
    assert schedule.growth_config(cfg, 30, arrived=False) == cfg
    late = schedule.growth_config(cfg, 30, arrived=True)
    assert late.clip == (0.5, 1.0)
    assert late.ema == cfg.ema and late.total_steps == 100
    assert schedule.growth_config(rules.RuleConfig(clip=None, total_steps=100), 30, arrived=True).clip is None
    capped = rules.RuleConfig(clip=(0.5, 0.8), total_steps=100)
    assert schedule.growth_config(capped, 30, arrived=True).clip == (0.5, 0.8)


def _run(total_steps, steps=120, lr=1e-4):
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=lr), horizon=0.0, total_steps=total_steps, anneal=None)
    for _ in range(steps):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    return opt


def test_rates_do_not_grow_after_the_window_once_arrived():
    free, budget = _run(None, lr=0.05), _run(40, lr=0.05)  # window: the first 10 steps
    assert budget._arrived
    late = [r for r in budget.history if r["step"] >= 10]
    assert late, "the run must refresh after the window"
    for r in late:
        for g in r["groups"]:
            assert g["estimate"] <= g["rate"] * (1 + 1e-12)  # a refresh may only lower a rate
    assert all(r["forwards"] != 4 for r in late)  # no travelling (line-only refreshes) after it
    grew = [r for r in free.history if r["step"] >= 10 and any(g["estimate"] > g["rate"] for g in r["groups"])]
    assert grew, "without a budget some rate grows after step 10 (else the test shows nothing)"


def test_a_start_far_below_still_travels_up_after_the_window():
    free, budget = _run(None), _run(4)  # 1e-4 is far below the Newton rates; window: 1 step
    assert min(budget.lrs) > 100 * 1e-4
    assert min(budget.lrs) > 0.1 * min(free.lrs)


def test_a_budget_larger_than_the_run_changes_nothing():
    assert _run(None).lrs == _run(10**6).lrs


def test_total_steps_can_be_set_later_and_is_checkpointed():
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=1e-4))
    assert opt.total_steps is None
    opt.total_steps = 40
    assert opt.rules.total_steps == 40
    assert opt.state_dict()["hidlr"]["config"]["rules"]["total_steps"] == 40


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-5, ValueError), (2.5, TypeError), (True, TypeError), ("100", TypeError)]
)
def test_bad_total_steps_is_refused_naming_it(value, error):
    q = make_quadratic([2], seed=0)
    with pytest.raises(error, match="total_steps"):
        HiDLR(torch.optim.SGD(q.params, lr=1e-3), total_steps=value)
    opt = HiDLR(torch.optim.SGD(q.params, lr=1e-3), total_steps=10)
    with pytest.raises(error, match="total_steps"):
        opt.total_steps = value
    assert opt.total_steps == 10  # unchanged


def _checkpoint(total_steps):
    opt = _run(total_steps, steps=5)
    return opt.state_dict()


def test_a_resumed_optimizer_without_a_budget_takes_the_checkpoints():
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=1e-4), horizon=0.0, anneal=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the budget alone is no configuration difference
        opt.load_state_dict(_checkpoint(40))
    assert opt.total_steps == 40


def test_an_optimizer_with_its_own_budget_keeps_it_and_warns():
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=1e-4), horizon=0.0, total_steps=100)
    with pytest.warns(UserWarning, match="other options"):
        opt.load_state_dict(_checkpoint(40))
    assert opt.total_steps == 100


def test_a_damaged_saved_budget_is_not_taken():
    sd = _checkpoint(40)
    sd["hidlr"]["config"]["rules"]["total_steps"] = "forty"
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=1e-4), horizon=0.0)
    with pytest.warns(UserWarning, match="other options"):
        opt.load_state_dict(sd)
    assert opt.total_steps is None


# ------------------------------------------------------------------------------------ anneal
def test_anneal_factor_is_one_then_falls_linearly_to_zero_at_the_budget():
    cfg = rules.RuleConfig(total_steps=100, anneal=0.2)
    assert [schedule.anneal_factor(cfg, t) for t in (0, 79, 80, 90, 99, 100, 150)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.5, 0.05, 0.0, 0.0], abs=1e-15
    )
    assert schedule.anneal_factor(rules.RuleConfig(anneal=0.2), 10**9) == 1.0  # no budget: no anneal
    assert schedule.anneal_factor(rules.RuleConfig(total_steps=100, anneal=None), 99) == 1.0
    whole = rules.RuleConfig(total_steps=10, anneal=1.0)
    assert [schedule.anneal_factor(whole, t) for t in range(11)] == pytest.approx([1 - t / 10 for t in range(11)])


def _annealed(steps, scheduler=False):
    """A run with the default anneal, or with the anneal off and a LambdaLR of the same shape; the
    applied rates and the estimates before each step, flattened over the groups."""
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.02), total_steps=40, anneal=None if scheduler else "auto")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (40 - s) / 8)) if scheduler else None
    lrs, estimates = [], []
    for _ in range(steps):
        opt.zero_grad()
        q.loss().backward()
        lrs.append(opt.lrs)
        estimates.append(opt.estimates)
        opt.step(probe=q.loss)
        if sched is not None:
            sched.step()
    return opt, lrs, estimates, q


def test_the_default_anneal_is_a_scheduler_of_its_shape_over_the_last_fifth_of_the_budget():
    opt, lrs, estimates, q = _annealed(40)
    assert opt.rules.anneal == 0.2
    for t in range(40):  # applied = estimate x the anneal's factor: 1 until step 32, then (40 - t) / 8
        assert lrs[t] == pytest.approx([e * min(1.0, (40 - t) / 8) for e in estimates[t]], rel=1e-12)
    assert lrs[39][0] < 0.2 * estimates[39][0]
    _, ref_lrs, _, ref_q = _annealed(40, scheduler=True)
    assert [r for rs in lrs for r in rs] == pytest.approx([r for rs in ref_lrs for r in rs], rel=1e-12)
    for a, b in zip(q.params, ref_q.params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_steps_past_the_budget_warn_and_change_nothing():
    opt, _, _, q = _annealed(40)
    before = [p.detach().clone() for p in q.params]
    opt.zero_grad()
    q.loss().backward()
    with pytest.warns(RuntimeWarning, match="past total_steps=40"):
        opt.step(probe=q.loss)
    assert opt.lrs == [0.0] * len(opt.lrs)
    assert all(torch.equal(a, b) for a, b in zip(before, q.params))


def test_a_budget_set_below_the_step_count_warns_once_at_the_next_step():
    q = make_quadratic([2], seed=0)
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.05))
    for _ in range(5):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    opt.total_steps = 3  # already past it: the rates are 0 from the next step on
    assert opt.lrs == [0.0]
    opt.zero_grad()
    q.loss().backward()
    with pytest.warns(RuntimeWarning, match="step 5 is past total_steps=3"):
        opt.step(probe=q.loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not again for the same budget
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)


def test_anneal_is_off_in_the_raw_newton_mode_and_checkpointed():
    q = make_quadratic([2], seed=0)
    assert HiDLR(torch.optim.SGD(q.params, lr=0.1), ema=0.0, clip=None).rules.anneal is None
    opt = HiDLR(torch.optim.SGD(q.params, lr=0.1), total_steps=50, anneal=0.5)
    assert opt.state_dict()["hidlr"]["config"]["rules"]["anneal"] == 0.5


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0.0, ValueError),
        (1.5, ValueError),
        (-0.1, ValueError),
        ("half", ValueError),
        (True, TypeError),
        (float("nan"), ValueError),
        ([0.2], TypeError),
    ],
)
def test_bad_anneal_is_refused_naming_it(value, error):
    q = make_quadratic([2], seed=0)
    with pytest.raises(error, match="anneal"):
        HiDLR(torch.optim.SGD(q.params, lr=0.1), anneal=value)
