"""Refreshes by the one-group line: travel from a far-off start rate, the first refresh's clip, and
the one-group rule for models with more groups than ``max_groups``."""

import copy
import math

import pytest
import torch

from hidlr import HiDLR
from hidlr.optim import rules
from tests.optim.conftest import group_per_param, make_quadratic


def test_travel_refreshes_every_step_by_the_one_group_line_while_the_clip_binds():
    def run(travel):
        q = make_quadratic([2, 2], seed=2)
        opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=1e-6), every="auto", travel=travel, horizon=0.0)
        for _ in range(80):
            opt.zero_grad()
            q.loss().backward()
            opt.step(probe=q.loss)
        return opt

    slow, fast = run(False), run(True)
    assert [r["step"] for r in slow.history][:5] == [0, 2, 6, 14, 30]
    steps = [r["step"] for r in fast.history]
    assert steps[:10] == list(range(10))  # 1e-6 is far below the Newton rate: one refresh a step
    travelled = fast.history[1 : 1 + rules.TRAVEL_LIMIT]
    assert all(r["forwards"] == 4 and all(g["a"] is None for g in r["groups"]) for r in travelled)
    assert fast.history[1]["groups"][0]["newton_rate"] / fast.history[1]["groups"][0]["rate"] == pytest.approx(
        fast.history[1]["groups"][1]["newton_rate"] / fast.history[1]["groups"][1]["rate"]
    )  # every group takes the line's multiple
    assert sum(r["forwards"] == 4 for r in fast.history) <= rules.TRAVEL_LIMIT
    assert min(fast.lrs) > 1000 * max(slow.lrs)
    # the line refreshes do not use up the probe credit: the full refreshes after them come as early
    full = [r["step"] for r in fast.history if r["forwards"] > 4]
    assert full[1] - full[0] <= 40


def test_travel_stops_at_the_travel_limit():
    q = make_quadratic([4], seed=2)
    opt = HiDLR(torch.optim.SGD(q.params, lr=1e-12), every="auto", horizon=0.0)  # 2**16 too small
    loss = q.loss
    for _ in range(rules.TRAVEL_LIMIT + 10):
        opt.zero_grad()
        loss().backward()
        opt.step(probe=loss)
    assert sum(r["forwards"] == 4 for r in opt.history) == rules.TRAVEL_LIMIT
    assert not opt._travelling


def _charges(lr0: float, steps: int, **options) -> tuple[HiDLR, list[tuple[bool, int]]]:
    """A run from ``lr0``: the optimizer, and per refresh whether the rates had arrived before it
    and its probe forwards."""
    q = make_quadratic([2, 2], seed=2)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=lr0), every="auto", horizon=0.0, **options)
    refreshes = []
    for _ in range(steps):
        arrived, count = opt._arrived, opt.refresh_count
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
        if opt.refresh_count > count:
            refreshes.append((arrived, opt.history[-1]["forwards"]))
    return opt, refreshes


def test_refreshes_before_the_rates_arrive_are_not_charged_to_the_probe_credit():
    opt, refreshes = _charges(0.05, 300, travel=False)  # per-group refreshes only, from below
    before = [f for arrived, f in refreshes if not arrived]
    assert len(before) > 2 and len(before) < len(refreshes)  # the run arrives, after several refreshes
    assert opt._uncredited_forwards == sum(before)  # those alone are not charged
    assert opt._probe_forwards == sum(f for _, f in refreshes)


def test_at_most_travel_limit_refreshes_go_uncharged_before_arrival():
    opt, refreshes = _charges(1e-30, 60, travel=False, first_clip=None, max_every=2)  # never arrives
    assert all(not arrived for arrived, _ in refreshes) and len(refreshes) > rules.TRAVEL_LIMIT
    assert opt._uncredited_forwards == sum(f for _, f in refreshes[: rules.TRAVEL_LIMIT])


def test_with_a_step_budget_the_uncharged_refreshes_before_arrival_stop_at_the_runs_probe_share():
    total = 100  # the run's whole probe share: 3 * 0.05 * 100 = 15 forwards
    opt, refreshes = _charges(1e-30, 60, travel=False, first_clip=None, max_every=2, total_steps=total)
    assert all(not arrived for arrived, _ in refreshes) and len(refreshes) > rules.TRAVEL_LIMIT
    share = 3 * opt.rules.probe_share * total
    free, spent = 0, 0
    for _, f in refreshes:  # uncharged while the forwards so far are below the share
        if spent >= share:
            break
        free, spent = free + 1, spent + f
    assert 0 < free < rules.TRAVEL_LIMIT
    assert opt._uncredited_forwards == spent and opt._arrival_forwards == spent
    long, _ = _charges(1e-30, 60, travel=False, first_clip=None, max_every=2, total_steps=100_000)
    assert long._uncredited_forwards == sum(f for _, f in refreshes[: rules.TRAVEL_LIMIT])  # the share binds no more


@pytest.mark.parametrize("lr0", [10.0, 1000.0])
def test_first_refresh_cuts_a_far_too_large_start_rate_at_once(lr0):
    q = make_quadratic([4], seed=2)
    w0 = q.flat()
    opt = HiDLR(torch.optim.SGD(q.params, lr=lr0), every="auto", horizon=0.0)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    b, a = q.newton(w0, q.flat(), opt.lrs)
    newton = float(b[0] / a[0, 0])  # the same along the step at any rate (plain SGD)
    assert newton < 0.5 * lr0  # the start rate is more than 2x too large: its step raises the loss
    # backtracking: the largest cut whose step lowers the loss (on a quadratic: rate < 2 * newton) ...
    cut = next(c for c in (1.0, *rules.BACKTRACK_CUTS) if c * lr0 < 2 * newton)
    assert cut < 1.0
    # ... then the first fit from the cut rate, unsmoothed, within the first clip (0.01, 2) of it
    assert opt.lrs[0] == pytest.approx(min(max(newton, 0.01 * cut * lr0), 2 * cut * lr0), rel=1e-6)
    rec = opt.history[0]
    assert rec["groups"][0]["rate"] == pytest.approx(cut * lr0)
    assert rec["groups"][0]["target"] == pytest.approx(opt.lrs[0])
    tries = 1 + rules.BACKTRACK_CUTS.index(cut) + 1  # the step at the start rate, then each cut up to the one taken
    assert rec["forwards"] == tries + 1 + 4 + 3  # the tests, L(w), the group's line of 4, the joint line


def test_first_refresh_backtracks_from_a_step_whose_probe_loss_is_not_finite():
    q = make_quadratic([4], seed=2)
    loss_start = float(q.loss().detach())

    def probe():  # the loss overflows far from the start
        loss = q.loss()
        return loss if float(loss.detach()) < 100 * loss_start else torch.tensor(float("inf"))

    opt = HiDLR(torch.optim.SGD(q.params, lr=1000.0), every="auto", horizon=0.0)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=probe)
    rate = opt.history[0]["groups"][0]["rate"]
    assert rate < 1000.0 and math.isfinite(opt.lrs[0]) and float(q.loss().detach()) < loss_start


@pytest.mark.parametrize(
    "lr0, options",
    [(1e-3, {}), (1000.0, {"first_clip": None})],
    ids=["the start step descends", "no first clip"],
)
def test_first_refresh_does_not_backtrack(lr0, options):
    q = make_quadratic([4], seed=2)
    opt = HiDLR(torch.optim.SGD(q.params, lr=lr0), every="auto", horizon=0.0, **options)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    assert opt.history[0]["groups"][0]["rate"] == pytest.approx(lr0)  # the fits start at the start rate


def test_first_refresh_grows_a_rate_by_at_most_the_usual_clip():
    q = make_quadratic([4], seed=2)
    opt = HiDLR(torch.optim.SGD(q.params, lr=1e-6), every="auto", horizon=0.0)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    assert opt.lrs[0] == pytest.approx(2e-6)  # the first clip is (0.01, 2): unsmoothed, at most 2x up
    assert opt.is_refresh_step()  # the clip binds: travel refreshes at the next step


def test_raw_mode_neither_travels_nor_clips_the_first_refresh():
    opt = HiDLR(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1), ema=0.0, clip=None)
    assert not opt.rules.travel and opt.rules.first_clip is None


def test_more_groups_than_max_groups_refresh_by_the_one_group_line():
    q = make_quadratic([1] * 10, seed=6)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=1, max_groups=8)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    rec = opt.history[-1]
    # L(w), the first refresh's test of the base step, the line at the probe points, the joint line
    assert rec["forwards"] == 1 + 1 + 4 + 3 and all(g["a"] is None for g in rec["groups"])
    ratios = {round(g["newton_rate"] / g["rate"], 9) for g in rec["groups"]}
    assert len(ratios) == 1  # every group takes the line's multiple
    assert len(set(opt.lrs)) == 1
    with pytest.raises(ValueError, match="max_groups must be"):
        HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), max_groups=0)
    with pytest.raises(ValueError, match="max_groups must be"):
        HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), max_groups="many")


def test_max_groups_none_keeps_per_group_fits():
    q = make_quadratic([1] * 10, seed=6)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=1, max_groups=None)
    opt.zero_grad()
    q.loss().backward()
    opt.step(probe=q.loss)
    assert sum(g["a"] is not None for g in opt.history[-1]["groups"]) == 8  # groups_per_refresh


def test_many_groups_follow_the_same_rates_as_one_group():
    q = make_quadratic([1] * 10, seed=8)
    q_one = copy.deepcopy(q)
    many = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.003, momentum=0.9), max_groups=8)
    one = HiDLR(torch.optim.SGD(q_one.params, lr=0.003, momentum=0.9))
    for _ in range(40):
        for opt, quad in ((many, q), (one, q_one)):
            opt.zero_grad()
            quad.loss().backward()
            opt.step(probe=quad.loss)
    assert many.refresh_count == one.refresh_count > 5
    assert many.lrs == pytest.approx([one.lrs[0]] * 10, rel=1e-6)
    torch.testing.assert_close(q.flat(), q_one.flat(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("lr0", [1e-6, 0.5])  # far below (travels), near the Newton rates (arrives)
def test_a_refresh_that_raises_after_its_decision_keeps_the_travel_and_arrival_state(monkeypatch, lr0):
    def run():
        q = make_quadratic([2, 2], seed=2)
        return q, HiDLR(torch.optim.SGD(group_per_param(q), lr=lr0), every="auto", travel=True, horizon=0.0)

    def step(q, opt):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)

    q, done = run()
    step(q, done)
    assert (done._travelling, done._arrived) == ((True, False) if lr0 < 1e-3 else (False, True))

    def late_failure(*args, **kwargs):  # after the decision has set the travel and arrival state
        raise RuntimeError("late")

    q, failed = run()
    with monkeypatch.context() as patch:
        patch.setattr(rules, "settle", late_failure)
        with pytest.raises(RuntimeError, match="late"):
            step(q, failed)
    assert (failed._travelling, failed._arrived, failed.refresh_count) == (False, False, 0)
    own = failed.state_dict()["hidlr"]
    assert (own["travelling"], own["arrived"]) == (False, False)
    step(q, failed)  # the run goes on: the next step refreshes as a first refresh does
    assert failed.refresh_count == 1 and failed._travelling == done._travelling
