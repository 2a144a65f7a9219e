"""The refresh schedule on plain numbers: the period under the probe budget, and which groups a
refresh probes (the step budget's growth window and anneal: ``test_step_budget.py``)."""

import pytest

from hidlr.optim import schedule
from hidlr.optim.rules import TRAVEL_LIMIT, RuleConfig


def test_next_refresh_doubles_the_period_up_to_max_every():
    cfg = RuleConfig()
    assert schedule.next_refresh(0, 1, forwards=8, spent=8, max_every=None, config=cfg) == (2, 2)
    assert schedule.next_refresh(10, 4, forwards=8, spent=900, max_every=5, config=cfg) == (15, 5)  # no budget


def test_next_refresh_caps_the_period_at_the_probe_share():
    cfg = RuleConfig(probe_share=0.05, probe_credit=1e9)
    # refreshes of 30 forwards every 200 steps use 30 / (3 * 200) = 5% of the compute
    assert schedule.next_refresh(1000, 128, forwards=30, spent=30, max_every=None, config=cfg) == (1200, 200)


def test_next_refresh_waits_for_the_probe_budget():
    cfg = RuleConfig(probe_share=0.05, probe_credit=100)
    # 300 spent, 50 more: allowed once 100 + 0.15 * t >= 350, at t = 1667
    assert schedule.next_refresh(10, 2, forwards=50, spent=300, max_every=None, config=cfg) == (1667, 4)
    assert schedule.next_refresh(10, 2, forwards=50, spent=50, max_every=None, config=cfg) == (14, 4)


@pytest.mark.parametrize("forwards", [8, 21, 37, 260])
def test_probe_forwards_stay_within_the_budget_whatever_their_cost(forwards):
    cfg = RuleConfig()
    t, period, spent = 0, 1, 0
    while t < 1000:
        spent += forwards
        assert spent <= max(forwards, cfg.probe_credit + 3 * cfg.probe_share * t)
        t, period = schedule.next_refresh(t, period, forwards, spent, None, cfg)


def test_arrival_is_free_for_travel_limit_refreshes_and_with_a_budget_within_the_runs_share():
    free = RuleConfig()
    assert schedule.arrival_is_free(free, refreshes=TRAVEL_LIMIT - 1, forwards=10**6)  # no budget: a count
    assert not schedule.arrival_is_free(free, refreshes=TRAVEL_LIMIT, forwards=0)
    short = RuleConfig(total_steps=100)  # share 3 * 0.05 * 100 = 15 forwards
    assert schedule.arrival_is_free(short, refreshes=1, forwards=14)
    assert not schedule.arrival_is_free(short, refreshes=1, forwards=16)
    assert not schedule.arrival_is_free(RuleConfig(total_steps=10**6), refreshes=TRAVEL_LIMIT, forwards=0)


def test_probe_order_takes_turns():
    active = [True, True, False, True, True]
    assert schedule.probe_order(active, [-1] * 5, None) == active
    assert schedule.probe_order(active, [-1] * 5, 4) == active
    first = schedule.probe_order(active, [-1] * 5, 2)
    assert first == [True, True, False, False, False]
    last = [0, 0, -1, -1, -1]
    assert schedule.probe_order(active, last, 2) == [False, False, False, True, True]
    assert schedule.probe_order(active, [1, 0, -1, 1, 2], 2) == [True, True, False, False, False]
