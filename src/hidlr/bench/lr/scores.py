"""Scores of the learning-rate benchmark: time to target, ranks, performance profiles and the
per-workload summary. Pure functions over plain numbers (``math.inf`` marks a failed run)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import median
from typing import Any

INF = math.inf


def time_to_target(
    steps: Sequence[int], times: Sequence[float], losses: Sequence[float], target: float
) -> tuple[int | None, float | None]:
    """First evaluation at which the loss is at or below ``target``: (step, time), or (None, None)."""
    if not len(steps) == len(times) == len(losses):
        raise ValueError(f"length mismatch: {len(steps)} steps, {len(times)} times, {len(losses)} losses")
    for s, t, v in zip(steps, times, losses):
        if v is not None and math.isfinite(v) and v <= target:
            return s, t
    return None, None


def finite_or_inf(x: float | None) -> float:
    """None and NaN (a failed run) become +inf, so that they sort last."""
    return INF if x is None or math.isnan(x) else float(x)


def spread(values: Iterable[float | None]) -> dict[str, float]:
    """Median, minimum and maximum, failures counted as +inf."""
    xs = sorted(finite_or_inf(v) for v in values)
    if not xs:
        raise ValueError("spread of an empty set")
    return {"median": median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


def rank(values: Mapping[str, float | None]) -> dict[str, float]:
    """Rank (1 = lowest value) with ties sharing their average rank; failures rank last."""
    items = sorted(((finite_or_inf(v), k) for k, v in values.items()), key=lambda t: t[0])
    out: dict[str, float] = {}
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][0] == items[i][0]:
            j += 1
        for _, k in items[i : j + 1]:
            out[k] = (i + j) / 2 + 1
        i = j + 1
    return out


def performance_profile(
    costs: Mapping[str, Mapping[str, float | None]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """Dolan-More performance profile.

    ``costs[problem][method]`` is a positive cost (None/inf = failed). For each method, the fraction
    of problems on which cost <= tau * (best cost on that problem), for each tau. Problems where every
    method failed count as failures for all methods.
    """
    methods = sorted({m for row in costs.values() for m in row})
    n = len(costs)
    if n == 0:
        raise ValueError("performance profile over no problems")
    if not methods:
        return {}
    out = {m: [0.0] * len(taus) for m in methods}
    for row in costs.values():
        vals = {m: finite_or_inf(row.get(m)) for m in methods}
        if any(v <= 0 for v in vals.values()):
            raise ValueError(f"costs must be positive, got {vals}")
        best = min(vals.values())
        if not math.isfinite(best):
            continue
        for m, v in vals.items():
            for i, tau in enumerate(taus):
                if v <= tau * best:
                    out[m][i] += 1.0 / n
    return out


def within(value: float | None, best: float | None, rel: float = 0.01) -> bool:
    """``value`` is at most ``best + rel * |best|`` (lower is better; failures are never within)."""
    v, b = finite_or_inf(value), finite_or_inf(best)
    if not math.isfinite(v):
        return False
    return v <= b + rel * abs(b) if math.isfinite(b) else True


def summarize(records: list[dict[str, Any]], grid_runs: int = 7) -> dict[str, Any]:
    """Per-workload tables, the tuned grid point, ranks and the performance-profile inputs.

    ``records``: run records with keys workload, method, family, status, final_loss, final_acc,
    steps_to_target, time_to_target, step_time. Skipped runs are left out.
    """
    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["status"] != "skipped":
            by[r["workload"]][r["method"]].append(r)
    out: dict[str, Any] = {"workloads": {}}
    for wl, methods in by.items():
        table: dict[str, dict[str, Any]] = {}
        for m, runs in methods.items():
            table[m] = {
                "family": runs[0]["family"],
                "lr": runs[0].get("lr"),
                "loss": spread(r["final_loss"] for r in runs),
                "acc": _acc_spread(runs),
                "steps_to_target": spread(r["steps_to_target"] for r in runs),
                "time_to_target": spread(r["time_to_target"] for r in runs),
                "step_time": spread(r["step_time"] for r in runs),
                "failed": sum(r["status"] != "ok" for r in runs),
                "runs": 1,
            }
        grid = {m: row for m, row in table.items() if row["family"] == "grid"}
        if grid:
            best = min(grid, key=lambda m: (grid[m]["loss"]["median"], m))
            table["tuned"] = dict(table[best], family="tuned", runs=len(grid), tuned_from=best)
        singles = {m: row["loss"]["median"] for m, row in table.items() if row["family"] == "single"}
        ranked = {m: row["loss"]["median"] for m, row in table.items() if row["family"] in ("single", "tuned")}
        overhead = {
            m: paired_ratio(methods[m], methods["default"])
            for m in methods
            if (m == "gen" or m.startswith("hidlr")) and "default" in methods
        }
        out["workloads"][wl] = {
            "table": table,
            "rank_single": rank(singles),
            "rank_with_tuned": rank(ranked),
            "hidlr_within_1pct_of_tuned": (
                within(table["hidlr-diag"]["loss"]["median"], table["tuned"]["loss"]["median"])
                if "hidlr-diag" in table and "tuned" in table
                else None
            ),
            "overhead_vs_default": overhead,
        }
    out["median_rank_single"] = _median_ranks(out["workloads"], "rank_single")
    out["median_rank_with_tuned"] = _median_ranks(out["workloads"], "rank_with_tuned")
    out["profile_costs_steps"] = {
        wl: {
            m: row["steps_to_target"]["median"] for m, row in w["table"].items() if row["family"] in ("single", "tuned")
        }
        for wl, w in out["workloads"].items()
    }
    out["profile_costs_time"] = {
        wl: {
            m: row["time_to_target"]["median"] for m, row in w["table"].items() if row["family"] in ("single", "tuned")
        }
        for wl, w in out["workloads"].items()
    }
    return out


def _acc_spread(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Median/min/max accuracy over the runs that report one (None when none does)."""
    accs = sorted(r["final_acc"] for r in runs if r.get("final_acc") is not None)
    if not accs:
        return None
    return {"median": median(accs), "min": accs[0], "max": accs[-1], "n": len(accs)}


def paired_ratio(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]], key: str = "step_time") -> float | None:
    """Median over seeds of ``a[key] / b[key]``, pairing runs by seed and commit (None when no pair).

    Runs of different commits come from different parts of a merged result store, run at other
    times and machine loads; a time ratio across them would measure the load, so they are not paired.
    """
    b_by_seed = {(r["seed"], r.get("commit")): r[key] for r in runs_b}
    ratios = [
        r[key] / b_by_seed[(r["seed"], r.get("commit"))]
        for r in runs_a
        if (r["seed"], r.get("commit")) in b_by_seed and r[key] is not None and b_by_seed[(r["seed"], r.get("commit"))]
    ]
    return median(ratios) if ratios else None


def _median_ranks(workloads: Mapping[str, Any], key: str) -> dict[str, dict[str, float]]:
    ranks: dict[str, list[float]] = defaultdict(list)
    for w in workloads.values():
        for m, r in w[key].items():
            ranks[m].append(r)
    return {m: {"median": median(v), "n": len(v)} for m, v in sorted(ranks.items(), key=lambda t: median(t[1]))}
