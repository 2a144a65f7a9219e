"""Start-rate invariance and the goal lines, on synthetic records with known answers."""

import math

import pytest

from hidlr.bench.lr.goals import (
    goals,
    goals_by_seed_set,
    goals_paired,
    leave_one_seed_out,
    relative_gap,
    start_rates,
    start_rates_paired,
)
from hidlr.bench.lr.scores import summarize


def rec(wl, method, seed, loss, family="single", lr=None, varies=None, lr0=None, status="ok"):
    return {
        "workload": wl,
        "method": method,
        "family": family,
        "seed": seed,
        "status": status,
        "final_loss": loss if status == "ok" else None,
        "final_acc": None,
        "steps_to_target": None,
        "time_to_target": None,
        "step_time": 1.0,
        "lr": lr,
        "varies": varies,
        "lr0": lr0,
    }


def variant(wl, method, lr0, seed, loss, status="ok"):
    return rec(
        wl, f"{method}@lr0={lr0:g}", seed, loss, family="start-rate", lr=lr0, varies=method, lr0=lr0, status=status
    )


def test_start_rates_medians_gap_and_failures():
    records = []
    for s in range(3):
        records.append(rec("a", "hidlr-diag", s, 1.00 + 0.01 * s, lr=1e-3))  # median 1.01 at 1e-3
        records.append(variant("a", "hidlr-diag", 1e-3, s, 9.0))  # same run: ignored
        records.append(variant("a", "hidlr-diag", 1e-5, s, [1.0, 1.03, 5.0][s]))  # median 1.03
        records.append(variant("a", "hidlr-diag", 1e-1, s, 1.015, status="diverged" if s == 0 else "ok"))
    records.append(rec("a", "default", 0, 2.0, lr=1e-3))  # no variants: left out
    table = start_rates(records)
    assert set(table) == {"a"} and set(table["a"]) == {"hidlr-diag"}
    t = table["a"]["hidlr-diag"]
    assert t["by_lr0"] == pytest.approx({1e-5: 1.03, 1e-3: 1.01, 1e-1: 1.015})
    assert t["best"] == pytest.approx(1.01) and t["worst"] == pytest.approx(1.03)
    assert t["gap"] == pytest.approx(0.02 / 1.01)
    assert t["within"] is True  # 1.03 <= 1.01 * 1.02 = 1.0302
    assert t["failed"] == 1 and t["runs"] == 9
    records.append(variant("a", "hidlr-diag", 1e-2, 0, 1.04))
    assert start_rates(records)["a"]["hidlr-diag"]["within"] is False


def test_start_rates_failed_median_is_infinite_gap():
    records = [rec("a", "gen", 0, 1.0, lr=1e-3), variant("a", "gen", 0.1, 0, None, status="diverged")]
    t = start_rates(records)["a"]["gen"]
    assert t["worst"] == math.inf and t["gap"] == math.inf and t["within"] is False


def _workload(wl, tuned, hidlr, gen, others, seeds=1):
    out = []
    for s in range(seeds):
        out += [
            rec(wl, "grid0", s, tuned, family="grid", lr=1e-3),
            rec(wl, "grid1", s, tuned + 1.0, family="grid"),
            rec(wl, "hidlr-diag", s, hidlr, lr=1e-3),
            rec(wl, "gen", s, gen, lr=1e-3),
        ]
        out += [rec(wl, m, s, v) for m, v in others.items()]
    return out


def test_goal_lines_on_known_answers():
    records = (
        _workload("w1", 1.0, 1.005, 1.1, {"prodigy": 2.0})  # within 1%, beats gen, rank 1
        + _workload("w2", 1.0, 1.02, 1.01, {"prodigy": 0.5})  # not within, loses to gen, rank 3
        + _workload("w3", -2.0, -2.01, -1.0, {"prodigy": 0.0})  # negative losses: within, rank 1
        + _workload("w4", 1.0, 0.9, 0.95, {"prodigy": 3.0})
    )  # better than tuned, rank 1
    records += [
        variant("w1", "hidlr-diag", 1e-5, 0, 1.005 * 1.019),
        variant("w2", "hidlr-diag", 1e-5, 0, 1.5),
        variant("w3", "hidlr-diag", 0.1, 0, None, status="diverged"),
    ]
    within, better, rank, inv, runs = goals(summarize(records), records)
    assert "within 1% of the best grid point" in within["goal"]
    assert (within["count"], within["of"], within["met"]) == (3, 4, True)  # 75% is enough
    assert "better than the one-group rule" in better["goal"]
    assert (better["count"], better["of"], better["met"]) == (3, 4, True)
    assert rank["met"] is True and "median rank 1 over 4" in rank["measured"]
    assert inv["goal"].startswith("start-rate invariance")
    assert (inv["count"], inv["of"], inv["met"]) == (1, 3, False)  # w2 off by 47%, w3 failed
    assert "4 workloads in all" in inv["measured"]
    assert "diverges" in runs["goal"]
    assert (runs["count"], runs["of"], runs["met"]) == (1, 7, False)


def test_ending_above_the_initial_loss_counts_as_failed():
    from hidlr.bench.lr.goals import failed

    base = rec("w", "gen", 0, 2.0)
    assert not failed(dict(base, curve={"loss": [2.3, 2.0]}))
    assert failed(dict(base, final_loss=2.35, curve={"loss": [2.3, 0.1, 2.35]}))  # collapsed back to chance
    assert failed(dict(base, final_loss=1e19, curve={"loss": [1600.0, 1e19]}))  # finite blow-up
    assert not failed(dict(base, final_loss=-0.6, curve={"loss": [-0.5, -0.6]}))  # negative losses
    assert failed(dict(base, status="diverged"))
    assert not failed(base)  # no curve: not judged


def test_goals_when_nothing_was_measured():
    records = [rec("w", "default", 0, 1.0)]
    out = goals(summarize(records), records)
    assert [x["met"] for x in out] == [None] * 5
    assert all(x["measured"] == "not measured" for x in out)


def test_goal_counts_per_set_of_three_seeds_against_each_sets_own_grid():
    records = []
    # w1: Hi-DLR within 1% of the grid and below GeN on seeds 0-2, far above both on seeds 3-5
    for s, (hidlr, gen) in enumerate([(1.0, 1.2)] * 3 + [(1.5, 1.2)] * 3):
        records += _workload("w1", 1.0, hidlr, gen, {}, seeds=1)
        for r in records[-4:]:
            r["seed"] = s
    # w2: the grid's best point differs between the sets; Hi-DLR is within 1% of each set's own
    for s in range(6):
        tuned = 1.0 if s < 3 else 2.0
        records += [
            rec("w2", "grid0", s, tuned, family="grid"),
            rec("w2", "grid1", s, 3.0 - tuned, family="grid"),
            rec("w2", "hidlr-diag", s, min(tuned, 3.0 - tuned) * 1.005, lr=1e-3),
            rec("w2", "gen", s, 0.5, lr=1e-3),
            variant("w2", "hidlr-diag", 1e-5, s, 99.0),  # start-rate runs do not enter
        ]
    sets = goals_by_seed_set(records)
    assert [g["seeds"] for g in sets] == [[0, 1, 2], [3, 4, 5]]
    assert [(g["within"], g["better_than_one_group"], g["of"]) for g in sets] == [(2, 1, 2), (1, 0, 2)]
    assert goals_by_seed_set([r for r in records if r["seed"] < 3]) == []  # one set: nothing to compare
    assert len(goals_by_seed_set(records + [dict(records[0], seed=6)])) == 2  # only full sets


def test_leave_one_seed_out_scores_each_seed_with_the_rate_chosen_on_the_others():
    grid = {"grid0": {0: 1.0, 1: 1.0, 2: 9.0}, "grid1": {0: 2.0, 1: 2.0, 2: 2.0}}
    # leaving out seed 0 or 1: grid0's median over the others is 5.0 > 2.0, so grid1 is chosen;
    # leaving out seed 2: grid0's median is 1.0, chosen, and scored on seed 2 at 9.0
    assert leave_one_seed_out(grid, [0, 1, 2]) == [2.0, 2.0, 9.0]


def test_relative_gap_signs_failures_and_negative_losses():
    assert relative_gap(1.1, 1.0) == pytest.approx(0.1)
    assert relative_gap(-1.1, -1.0) == pytest.approx(-0.1)  # an NLL below a negative reference is lower
    assert relative_gap(math.inf, 1.0) == math.inf
    assert relative_gap(1.0, math.inf) == -math.inf
    assert relative_gap(math.inf, math.inf) == 0.0
    assert relative_gap(0.0, 0.0) == 0.0
    assert relative_gap(0.5, 0.0) == math.inf


def test_goals_paired_on_known_answers():
    records = []
    for s, (g0, g1, hidlr, gen) in enumerate([(1.0, 2.0, 1.0, 1.1), (1.0, 2.0, 0.9, 1.0), (9.0, 2.0, 1.5, 1.2)]):
        records += [
            rec("w", "grid0", s, g0, family="grid", lr=1e-3),
            rec("w", "grid1", s, g1, family="grid", lr=1e-2),
            rec("w", "hidlr-diag", s, hidlr, lr=1e-3),
            rec("w", "gen", s, gen, lr=1e-3),
            variant("w", "hidlr-diag", 1e-5, s, 99.0),  # start-rate runs do not enter
        ]
    # held-out grid runs (leave_one_seed_out): 2.0, 2.0, 9.0; gaps -0.5, -0.55, -0.8333
    # against gen: -0.0909, -0.1, +0.25
    records += [
        rec("short", m, s, 1.0, family="grid" if m.startswith("grid") else "single")
        for s in range(2)
        for m in ("grid0", "hidlr-diag", "gen")
    ]  # two seeds only: left out
    paired = goals_paired(records)
    (row,) = paired["rows"]
    assert row["workload"] == "w" and row["seeds"] == 3
    assert row["gap_to_grid"] == pytest.approx(-0.55)
    assert row["lower_than_grid"] == 3
    assert row["gap_to_one_group"] == pytest.approx(-0.0909, abs=1e-4)
    assert row["lower_than_one_group"] == 2
    assert (paired["within"], paired["better_than_one_group"], paired["of"]) == (1, 1, 1)


def test_goals_paired_counts_a_failed_run_as_infinitely_worse():
    records = []
    for s in range(3):
        records += [
            rec("w", "grid0", s, 1.0, family="grid", lr=1e-3),
            rec("w", "hidlr-diag", s, 1.0, lr=1e-3, status="ok" if s else "error"),
            rec("w", "gen", s, 1.0, lr=1e-3),
        ]
    (row,) = goals_paired(records)["rows"]
    assert row["gap_to_grid"] == 0.0  # the median of (inf, 0, 0)
    assert row["lower_than_grid"] == 0
    records = [dict(r, status="error", final_loss=None) if r["method"] == "hidlr-diag" else r for r in records]
    paired = goals_paired(records)
    assert paired["rows"][0]["gap_to_grid"] == math.inf and paired["within"] == 0


def test_start_rates_paired_against_the_default_rates_run_of_the_same_seed():
    records = []
    for s, (own, small, large, tiny) in enumerate([(1.0, 1.1, 0.5, 1.005), (2.0, 1.8, 1.0, 2.0), (3.0, 3.3, 1.5, 3.0)]):
        records += [
            rec("a", "hidlr-diag", s, own, lr=1e-3),
            variant("a", "hidlr-diag", 1e-3, s, own),  # the same run as the method's own: enters once
            variant("a", "hidlr-diag", 1e-5, s, small),
            variant("a", "hidlr-diag", 1e-1, s, large),
            rec("b", "hidlr-diag", s, own, lr=1e-3),
            variant("b", "hidlr-diag", 1e-5, s, tiny),
        ]
    records.append(variant("a", "hidlr-diag", 1e-2, 7, 5.0))  # no seed in common with the default's runs
    paired = start_rates_paired(records)
    a = paired["a"]["hidlr-diag"]
    assert sorted(a["by_lr0"]) == [1e-5, 1e-1]
    assert a["by_lr0"][1e-5] == {"gap": pytest.approx(0.1), "higher": 2, "lower": 1, "seeds": 3}
    assert a["by_lr0"][1e-1]["gap"] == pytest.approx(-0.5)
    assert a["spread"] == pytest.approx(0.6) and not a["within"]  # +10% against -50%
    b = paired["b"]["hidlr-diag"]
    assert b["spread"] == pytest.approx(0.0) and b["within"]  # the median seed is level (+0.5%, 0, 0)
    assert start_rates(records)["a"]["hidlr-diag"]["by_lr0"][1e-2] == 5.0  # the unpaired table keeps it


def test_start_rates_paired_counts_a_failed_run_as_infinitely_worse():
    records = []
    for s in range(3):
        records += [rec("a", "gen", s, 1.0, lr=1e-3), variant("a", "gen", 1e-1, s, 1.0, status="error")]
    row = start_rates_paired(records)["a"]["gen"]
    assert row["by_lr0"][1e-1]["gap"] == math.inf and row["spread"] == math.inf and not row["within"]
