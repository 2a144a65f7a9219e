"""Growth phases: ``HiDLR.restart_schedule`` (the next step refreshes, the spent probes are
forgotten) and a run that starts at a zero weight matrix begin one; until a refresh of the phase
arrives a concave one-group descent grows the rates, and a growth the probe loss rises after is
undone."""

import copy
import dataclasses

import pytest
import torch

from hidlr import HiDLR
from hidlr.optim import rules
from hidlr.optim.guards import ProbeError
from hidlr.optim.refresh import has_zero_factor
from tests.optim.conftest import group_per_param, make_quadratic


def _held_back(seed=5):
    q = make_quadratic([2, 2, 2, 2], seed=seed)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01))
    opt.rules = dataclasses.replace(opt.rules, probe_credit=0.0)  # no credit: probes wait for their share
    return q, opt


def _train(q, opt, n):
    refreshed = []
    for _ in range(n):
        if opt.is_refresh_step():
            refreshed.append(opt.step_count)
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)
    return refreshed


def test_restart_schedule_refreshes_next_and_forgets_the_probes_spent():
    q, opt = _held_back()
    assert _train(q, opt, 40) == [0]  # the first refresh's probes hold the next ones back
    rates = opt.lrs
    opt.restart_schedule()
    assert opt.is_refresh_step() and opt.lrs == rates and opt.step_count == 40 and opt.refresh_count == 1
    state = copy.deepcopy(opt.state_dict())
    steps = _train(q, opt, 40)
    assert steps[:2] == [40, 41] and steps == [r["step"] for r in opt.history][1:]  # period 1, then doubling
    q2, resumed = _held_back()
    resumed.load_state_dict(state)  # the restart travels with a checkpoint
    assert _train(q2, resumed, 40) == steps


def _concave_run():
    """Two groups on the loss -|w|^2 (concave and descending along every gradient step), one line
    per refresh (more groups than max_groups)."""
    w = [torch.nn.Parameter(torch.tensor([1.0, -0.5])), torch.nn.Parameter(torch.tensor([0.3]))]

    def loss():
        return -sum((p**2).sum() for p in w)

    opt = HiDLR(torch.optim.SGD([{"params": [p]} for p in w], lr=1e-3), max_groups=1, every=1)
    return loss, opt


def _step(loss, opt):
    opt.zero_grad()
    loss().backward()
    opt.step(probe=loss)


def test_a_concave_descent_keeps_the_rates_until_a_restart_then_grows_them():
    loss, opt = _concave_run()
    for _ in range(3):
        _step(loss, opt)
    assert [r["groups"][0]["reason"] for r in opt.history] == ["one-group line not convex"] * 3
    assert opt.lrs == [1e-3, 1e-3]  # the run's start: the rule keeps the rates
    opt.restart_schedule()
    state = copy.deepcopy(opt.state_dict())
    assert state["hidlr"]["restarted"] is True and state["hidlr"]["arrived"] is False
    _step(loss, opt)
    grown = opt.lrs
    assert opt.history[-1]["groups"][0]["accepted"] and grown[0] == pytest.approx(1.7e-3) and grown[1] == grown[0]
    loss2, resumed = _concave_run()
    resumed.load_state_dict(state)  # the restarted phase travels with a checkpoint
    _step(loss2, resumed)
    assert resumed.lrs == grown
    state["hidlr"]["format"] = 3  # a checkpoint from before the flag: not restarted
    del state["hidlr"]["restarted"], state["hidlr"]["arrival_refreshes"]
    loss3, old = _concave_run()
    old.load_state_dict(state)
    _step(loss3, old)
    assert old.lrs == [1e-3, 1e-3]


def test_a_growing_phase_ends_when_a_refresh_arrives_and_keeps_the_runs_arrival():
    q = make_quadratic([2, 2], seed=3)
    opt = HiDLR(torch.optim.SGD(group_per_param(q), lr=0.01), every=1)
    _train(q, opt, 12)
    assert opt.state_dict()["hidlr"]["arrived"] is True  # convex fits inside the clip
    opt.restart_schedule()
    state = opt.state_dict()["hidlr"]
    assert state["restarted"] is True and state["arrived"] is True  # the growth window is the run's
    _train(q, opt, 1)
    assert opt.history[-1]["groups"][0]["accepted"] and opt.state_dict()["hidlr"]["restarted"] is False


def test_a_growth_the_probe_loss_rises_after_is_undone_and_ends_the_phase():
    loss, opt = _concave_run()
    offset = [0.0]  # moves only the probe loss's level: the line stays the same concave one

    def step(o, f):
        o.zero_grad()
        f().backward()
        o.step(probe=lambda: f() + offset[0])

    opt.restart_schedule()
    for _ in range(3):
        step(opt, loss)
    assert opt.lrs[0] > 4e-3 and [r["groups"][0]["accepted"] for r in opt.history] == [True] * 3
    state = copy.deepcopy(opt.state_dict())
    assert state["hidlr"]["growth"]["before"] == [1e-3, 1e-3] and state["hidlr"]["restarted"] is True
    offset[0] = 0.05 * abs(opt.history[-1]["loss"])  # within the allowed rise: the growth goes on
    step(opt, loss)
    assert opt.lrs[0] > 8e-3
    offset[0] = 1.0  # the probe loss rises well above its lowest since the growth
    step(opt, loss)
    assert [g["reason"] for g in opt.history[-1]["groups"]] == [rules.GROWTH_UNDONE] * 2
    assert opt.lrs == [1e-3, 1e-3]
    own = opt.state_dict()["hidlr"]
    assert own["restarted"] is False and own["growth"] is None
    step(opt, loss)  # the phase is over: a concave line keeps the rates again
    assert opt.history[-1]["groups"][0]["reason"] == rules.NO_LINE and opt.lrs == [1e-3, 1e-3]
    loss2, resumed = _concave_run()
    resumed.load_state_dict(state)  # the growth's start travels with a checkpoint
    step(resumed, loss2)
    assert resumed.history[-1]["groups"][0]["reason"] == rules.GROWTH_UNDONE and resumed.lrs == [1e-3, 1e-3]
    resumed.restart_schedule()  # a new phase: the concave line grows the rates again
    step(resumed, loss2)
    assert resumed.history[-1]["groups"][0]["accepted"] and resumed.lrs[0] == pytest.approx(1.7e-3)


def _concave_factor_run(start: float):
    """The concave run with a third group, a 2x2 weight matrix at ``start`` everywhere."""
    w = [
        torch.nn.Parameter(torch.tensor([1.0, -0.5])),
        torch.nn.Parameter(torch.tensor([0.3])),
        torch.nn.Parameter(torch.full((2, 2), start)),
    ]

    def loss():
        return -(w[0] ** 2).sum() - (w[1] ** 2).sum() - ((w[2] + 0.5) ** 2).sum()

    opt = HiDLR(torch.optim.SGD([{"params": [p]} for p in w], lr=1e-3), max_groups=1, every=1)
    return loss, opt


def test_has_zero_factor_is_a_weight_matrix_of_zeros_only():
    assert has_zero_factor([torch.ones(3), torch.zeros(4, 2)])
    assert has_zero_factor([torch.zeros(2, 3, 1)])
    assert not has_zero_factor([torch.zeros(4), torch.ones(2, 2)])  # a bias or norm shift at zero is not one
    assert not has_zero_factor([torch.zeros(0, 3)])  # nor an empty matrix
    assert not has_zero_factor([torch.tensor([[0.0, 1e-30]])])
    assert not has_zero_factor([])


def test_a_run_that_starts_at_a_zero_matrix_grows_on_a_concave_line_and_one_that_does_not_keeps_its_rates():
    loss, opt = _concave_factor_run(0.0)
    _step(loss, opt)
    # the clip's bound, 2x, unsmoothed at a first refresh
    assert opt.history[0]["groups"][0]["accepted"] and opt.lrs[0] == pytest.approx(2e-3)
    assert opt.lrs == [opt.lrs[0]] * 3 and opt.state_dict()["hidlr"]["restarted"] is True
    loss2, kept = _concave_factor_run(0.1)  # the same run from a matrix off zero: the start keeps the rates
    for _ in range(3):
        _step(loss2, kept)
    assert kept.lrs == [1e-3] * 3 and kept.history[0]["groups"][0]["reason"] == rules.NO_LINE
    loss3, frozen = _concave_factor_run(0.0)  # a zero matrix in a group without a rate does not count
    frozen.param_groups[2]["lr"] = 0.0
    _step(loss3, frozen)
    assert frozen.lrs[:2] == [1e-3, 1e-3] and frozen.state_dict()["hidlr"]["restarted"] is False


def test_a_first_refresh_that_raises_leaves_no_growth_phase_behind():
    loss, opt = _concave_factor_run(0.0)
    calls = [0]

    def probe():
        calls[0] += 1
        if calls[0] == 2:
            raise ProbeError("probe failed")
        return loss()

    opt.zero_grad()
    loss().backward()
    with pytest.raises(ProbeError):
        opt.step(probe=probe)
    own = opt.state_dict()["hidlr"]
    assert own["restarted"] is False and own["growth"] is None and opt.refresh_count == 0
