"""Scores of the learning-rate benchmark against hand-computed values."""

import math

import pytest

from hidlr.bench.lr.scores import (
    paired_ratio,
    performance_profile,
    rank,
    spread,
    summarize,
    time_to_target,
    within,
)

INF = math.inf


def test_time_to_target_first_crossing():
    steps, times, losses = [0, 10, 20, 30], [0.0, 1.0, 2.5, 4.0], [2.0, 0.9, 0.5, 0.4]
    assert time_to_target(steps, times, losses, 0.5) == (20, 2.5)  # equality counts as reached
    assert time_to_target(steps, times, losses, 0.95) == (10, 1.0)
    assert time_to_target(steps, times, losses, 0.1) == (None, None)


def test_time_to_target_skips_non_finite_and_checks_lengths():
    assert time_to_target([0, 1, 2], [0, 1, 2], [float("nan"), None, 0.1], 0.2) == (2, 2)
    with pytest.raises(ValueError, match="length mismatch"):
        time_to_target([0, 1], [0.0], [1.0, 2.0], 0.5)


def test_rank_ties_average_and_failures_last():
    r = rank({"a": 0.3, "b": 0.1, "c": 0.3, "d": None, "e": float("nan"), "f": 0.2})
    # order: b (1), f (2), a/c tie for 3-4 -> 3.5, d/e (failures) tie for 5-6 -> 5.5
    assert r == {"b": 1.0, "f": 2.0, "a": 3.5, "c": 3.5, "d": 5.5, "e": 5.5}


def test_performance_profile_hand_computed():
    costs = {
        "p1": {"A": 10, "B": 20, "C": None},  # best 10: A=1, B=2, C=inf
        "p2": {"A": 40, "B": 20, "C": 30},  # best 20: A=2, B=1, C=1.5
        "p3": {"A": None, "B": None, "C": None},  # nobody reached: failure for all
        "p4": {"A": 5, "B": 5, "C": 50},  # best 5: A=1, B=1, C=10
    }
    prof = performance_profile(costs, [1.0, 1.5, 2.0, 10.0])
    assert prof["A"] == pytest.approx([0.5, 0.5, 0.75, 0.75])
    assert prof["B"] == pytest.approx([0.5, 0.5, 0.75, 0.75])
    assert prof["C"] == pytest.approx([0.0, 0.25, 0.25, 0.5])


def test_performance_profile_rejects_bad_input():
    with pytest.raises(ValueError, match="no problems"):
        performance_profile({}, [1.0])
    with pytest.raises(ValueError, match="positive"):
        performance_profile({"p": {"A": 0.0, "B": 1.0}}, [1.0])


def test_within_one_percent_handles_sign_and_failures():
    assert within(1.0099, 1.0) and not within(1.0101, 1.0)
    # negative losses (NLL): the allowance is 1% of |best|, i.e. up to -0.5 + 0.005 = -0.495
    assert within(-0.505, -0.5) and within(-0.4951, -0.5) and not within(-0.4949, -0.5)
    assert within(0.9, 1.0)  # better than best
    assert not within(None, 1.0) and not within(INF, 1.0)


def test_spread_counts_failures_as_inf():
    assert spread([3.0, 1.0, None]) == {"median": 3.0, "min": 1.0, "max": INF, "n": 3}
    with pytest.raises(ValueError):
        spread([])


def _rec(wl, m, fam, seed, loss, step_time=1.0, acc=None, stt=None, status="ok", lr=None):
    return {
        "workload": wl,
        "method": m,
        "family": fam,
        "seed": seed,
        "final_loss": loss,
        "final_acc": acc,
        "steps_to_target": stt,
        "time_to_target": None if stt is None else stt * step_time,
        "step_time": step_time,
        "status": status,
        "lr": lr,
    }


def test_paired_ratio_pairs_by_seed():
    a = [_rec("w", "h", "single", 0, 1, step_time=3.0), _rec("w", "h", "single", 1, 1, step_time=2.0)]
    b = [_rec("w", "d", "single", 1, 1, step_time=1.0), _rec("w", "d", "single", 0, 1, step_time=2.0)]
    assert paired_ratio(a, b) == pytest.approx((1.5 + 2.0) / 2)
    assert paired_ratio(a, []) is None


def test_paired_ratio_does_not_pair_runs_of_different_commits():
    a = [dict(_rec("w", "h", "single", 0, 1, step_time=3.0), commit="new")]
    b = [dict(_rec("w", "d", "single", 0, 1, step_time=1.0), commit="old")]
    assert paired_ratio(a, b) is None
    b.append(dict(_rec("w", "d", "single", 0, 1, step_time=2.0), commit="new"))
    assert paired_ratio(a, b) == pytest.approx(1.5)


def test_summarize_tuned_ranks_and_goal():
    recs = []
    for s, (g0, g1, d, h, p) in enumerate(
        [(0.50, 0.30, 0.40, 0.302, 0.35), (0.52, 0.32, 0.41, 0.330, None), (0.49, 0.31, 0.39, 0.305, 0.36)]
    ):
        recs += [
            _rec("w", "grid0", "grid", s, g0, lr=1e-3),
            _rec("w", "grid1", "grid", s, g1, lr=1e-2),
            _rec("w", "default", "single", s, d, step_time=1.0),
            _rec("w", "hidlr-diag", "single", s, h, step_time=1.2),
            _rec("w", "prodigy", "single", s, p, status="ok" if p else "diverged"),
            _rec("w", "gen", "skipped", s, None, status="skipped"),
        ]
    out = summarize(recs)["workloads"]["w"]
    t = out["table"]
    assert t["tuned"]["tuned_from"] == "grid1" and t["tuned"]["runs"] == 2
    assert t["tuned"]["loss"]["median"] == pytest.approx(0.31)
    assert t["hidlr-diag"]["loss"]["median"] == pytest.approx(0.305)
    assert t["prodigy"]["failed"] == 1 and t["prodigy"]["loss"]["median"] == pytest.approx(0.36)
    assert "gen" not in t  # skipped runs are left out
    assert out["rank_single"] == {"hidlr-diag": 1.0, "prodigy": 2.0, "default": 3.0}
    assert out["rank_with_tuned"] == {"hidlr-diag": 1.0, "tuned": 2.0, "prodigy": 3.0, "default": 4.0}
    assert out["hidlr_within_1pct_of_tuned"] is True  # 0.305 <= 0.31 * 1.01
    assert out["overhead_vs_default"]["hidlr-diag"] == pytest.approx(1.2)
