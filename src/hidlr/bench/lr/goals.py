"""Start-rate invariance and the benchmark's goals, measured from run records and the summary.

Pure functions over plain data (:func:`hidlr.bench.lr.scores.summarize` output and run records).
Losses are compared with :func:`~hidlr.bench.lr.scores.within` (``value <= best + rel * |best|``,
failures never within), medians over seeds count a failed run as +inf.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from statistics import median
from typing import Any

from hidlr.bench.lr.scores import finite_or_inf, summarize, within

HIDLR = "hidlr-diag"
ONE_GROUP = "gen"
WITHIN_TUNED = 0.01  # "within 1% of the best grid point"
INVARIANCE = 0.02  # "within 2% of the best start rate"
SHARE = 0.75  # "on at least 75% of the workloads"


def failed(rec: dict[str, Any]) -> bool:
    """The run did not end "ok" (non-finite loss, error), or it ended above its initial validation
    loss although finite (it blew up, or training collapsed back to no better than the start)."""
    if rec["status"] != "ok":
        return True
    curve = rec.get("curve") or {}
    first = (curve.get("loss") or [None])[0]
    final = rec.get("final_loss")
    return first is not None and final is not None and final > first


def _runs_by_start_rate(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[float, dict[int, Any]]]:
    """``(workload, method) -> start rate -> seed -> record`` for the rate-adapting methods measured at
    two or more start rates: a start-rate variant (``varies`` set) at its ``lr0``, the method itself at
    its nominal rate ``lr`` (the workload's default); a variant at the default rate and the method's
    own run are the same run and enter once per seed (the first record kept)."""
    runs: dict[tuple[str, str], dict[float, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["status"] == "skipped":
            continue
        if r.get("varies"):
            method, lr0 = r["varies"], r["lr0"]
        elif r.get("lr") is not None:
            method, lr0 = r["method"], r["lr"]
        else:
            continue
        runs[(r["workload"], method)][float(lr0)].setdefault(r["seed"], r)
    return {
        key: by_rate
        for key, by_rate in runs.items()
        if len(by_rate) >= 2 and any(r.get("varies") for seeds in by_rate.values() for r in seeds.values())
    }


def start_rates(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Final loss against the start rate, per workload and rate-adapting method
    (:func:`_runs_by_start_rate`).

    Returns ``{workload: {method: {"by_lr0": {lr0: median loss}, "best", "worst", "gap", "within",
    "failed", "runs"}}}`` for methods measured at two or more start rates; ``gap`` is
    (worst - best) / |best| (inf when a rate's median failed), ``within`` whether worst is within
    :data:`INVARIANCE` of best, ``failed`` the runs that :func:`failed`.
    """
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (wl, method), by_rate in _runs_by_start_rate(records).items():
        meds = {
            lr0: median(finite_or_inf(r["final_loss"]) for r in seeds.values())
            for lr0, seeds in sorted(by_rate.items())
        }
        best, worst = min(meds.values()), max(meds.values())
        gap = (worst - best) / abs(best) if best not in (0.0, float("inf")) and worst != float("inf") else float("inf")
        out[wl][method] = {
            "by_lr0": meds,
            "best": best,
            "worst": worst,
            "gap": gap,
            "within": within(worst, best, INVARIANCE),
            "failed": sum(failed(r) for seeds in by_rate.values() for r in seeds.values()),
            "runs": sum(len(seeds) for seeds in by_rate.values()),
        }
    return dict(out)


def start_rates_paired(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Start-rate invariance paired by seed: per workload and rate-adapting method, each other start
    rate's runs against the method's own run from the default rate on the same seed (seeds differ by
    tens of percent on small data, so medians of unpaired runs mislead).

    Returns ``{workload: {method: {"by_lr0": {lr0: {"gap": median over seeds of the relative gap
    (:func:`relative_gap`), "higher", "lower": seeds more than 1% above / below, "seeds"}}, "spread":
    the largest gap minus the smallest (the default rate counting as 0), "within": spread <=
    INVARIANCE}}}``; start rates with no seed in common with the default rate's runs are left out.
    """
    own = {(r["workload"], r["method"]): float(r["lr"]) for r in records if not r.get("varies") and r.get("lr")}
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (wl, method), by_rate in _runs_by_start_rate(records).items():
        default = own.get((wl, method))
        if default not in by_rate:
            continue
        base = {s: finite_or_inf(r["final_loss"]) for s, r in by_rate[default].items()}
        cells = {}
        for lr0, seeds in sorted(by_rate.items()):
            common = sorted(set(seeds) & set(base))
            if lr0 == default or not common:
                continue
            gaps = [relative_gap(finite_or_inf(seeds[s]["final_loss"]), base[s]) for s in common]
            cells[lr0] = {
                "gap": median(gaps),
                "higher": sum(g > 0.01 for g in gaps),
                "lower": sum(g < -0.01 for g in gaps),
                "seeds": len(common),
            }
        if cells:
            gaps = [0.0, *(c["gap"] for c in cells.values())]
            spread = max(gaps) - min(gaps)
            out[wl][method] = {"by_lr0": cells, "spread": spread, "within": spread <= INVARIANCE}
    return dict(out)


def _goal(name: str, measured: str, met: bool | None, count: int | None = None, of: int | None = None) -> dict:
    return {"goal": name, "measured": measured, "met": met, "count": count, "of": of}


def _share(name: str, hits: list[bool]) -> dict[str, Any]:
    n, k = len(hits), sum(hits)
    if not n:
        return _goal(name, "not measured", None)
    return _goal(name, f"{k} of {n} workloads ({100 * k / n:.0f}%)", k >= SHARE * n, k, n)


def _hits(summary: dict[str, Any], method: str) -> tuple[list[bool], list[bool]]:
    """Per workload: ``method`` within :data:`WITHIN_TUNED` of the tuned grid point; ``method``
    lower than the one-group rule."""
    wls = summary["workloads"]
    tuned = [
        within(w["table"][method]["loss"]["median"], w["table"]["tuned"]["loss"]["median"], WITHIN_TUNED)
        for w in wls.values()
        if method in w["table"] and "tuned" in w["table"]
    ]
    one_group = [
        finite_or_inf(w["table"][method]["loss"]["median"]) < finite_or_inf(w["table"][ONE_GROUP]["loss"]["median"])
        for w in wls.values()
        if method in w["table"] and ONE_GROUP in w["table"]
    ]
    return tuned, one_group


def goals_by_seed_set(records: list[dict[str, Any]], size: int = 3, method: str = HIDLR) -> list[dict[str, Any]]:
    """The first two goals' counts on each set of ``size`` consecutive seeds (the seeds sorted, only
    full sets, and only when there are two sets or more), each set against its own tuned grid: how
    much of a count is the draw of seeds. Each ``{"seeds", "within", "better_than_one_group", "of"}``
    (``of``: the workloads with ``method``, the grid and the one-group rule on those seeds)."""
    seeds = sorted({r["seed"] for r in records if r["status"] != "skipped"})
    sets = [seeds[i : i + size] for i in range(0, len(seeds) - size + 1, size)]
    if len(sets) < 2:
        return []
    out = []
    for chosen in sets:
        summary = summarize([r for r in records if r["seed"] in chosen and not r.get("varies")])
        complete = {
            wl: w
            for wl, w in summary["workloads"].items()
            if all(m in w["table"] for m in (method, "tuned", ONE_GROUP))
        }
        tuned, one_group = _hits({"workloads": complete}, method)
        out.append(
            {"seeds": chosen, "within": sum(tuned), "better_than_one_group": sum(one_group), "of": len(complete)}
        )
    return out


def leave_one_seed_out(grid: dict[str, dict[int, float]], seeds: Sequence[int]) -> list[float]:
    """The tuned grid scored out of sample: per seed of ``seeds``, the loss on that seed of the grid
    point whose median over the *other* seeds is lowest. ``grid``: point -> seed -> final loss."""
    out = []
    for s in seeds:
        others = [x for x in seeds if x != s]
        chosen = min(grid, key=lambda p: median(grid[p][x] for x in others))
        out.append(grid[chosen][s])
    return out


def relative_gap(value: float, reference: float) -> float:
    """``(value - reference) / |reference|``; a failed run (+inf) is infinitely worse, two failures
    are level, and a zero reference gives the sign of the difference as +-inf (0 when equal)."""
    if value == reference:
        return 0.0
    if reference == 0.0 or not math.isfinite(reference) or not math.isfinite(value):
        return math.copysign(math.inf, value - reference)
    return (value - reference) / abs(reference)


def goals_paired(records: list[dict[str, Any]], method: str = HIDLR) -> dict[str, Any]:
    """The first two goals paired by seed, with the grid scored out of sample.

    Each seed draws its own split, initialisation and batches, so per workload ``method``'s run on a
    seed is compared with the grid's :func:`leave_one_seed_out` run on that seed and with the
    one-group rule's run on that seed; ``gap_*`` is the median over seeds of :func:`relative_gap`,
    ``lower_*`` on how many seeds ``method`` ends lower. Workloads where ``method``, the one-group
    rule and every grid point ran on the same three or more seeds (default start rate only).

    Returns ``{"rows": [{"workload", "seeds", "gap_to_grid", "lower_than_grid", "gap_to_one_group",
    "lower_than_one_group"}], "within": paired gap to the grid within 1%, "better_than_one_group":
    paired gap to the one-group rule below 0, "of": len(rows)}``.
    """
    runs: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    grids: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["status"] == "skipped" or r.get("varies"):
            continue
        loss = finite_or_inf(r["final_loss"])
        if r["family"] == "grid":
            grids[r["workload"]][r["method"]][r["seed"]] = loss
        elif r["method"] in (method, ONE_GROUP):
            runs[(r["workload"], r["method"])][r["seed"]] = loss
    rows = []
    for wl, grid in grids.items():
        mine, one = runs.get((wl, method)), runs.get((wl, ONE_GROUP))
        if not mine or not one:
            continue
        seeds = sorted(set(mine).intersection(one, *grid.values()))
        if len(seeds) < 3:
            continue
        held_out = leave_one_seed_out(grid, seeds)
        rows.append(
            {
                "workload": wl,
                "seeds": len(seeds),
                "gap_to_grid": median(relative_gap(mine[s], g) for s, g in zip(seeds, held_out)),
                "lower_than_grid": sum(mine[s] < g for s, g in zip(seeds, held_out)),
                "gap_to_one_group": median(relative_gap(mine[s], one[s]) for s in seeds),
                "lower_than_one_group": sum(mine[s] < one[s] for s in seeds),
            }
        )
    return {
        "rows": rows,
        "within": sum(r["gap_to_grid"] <= WITHIN_TUNED for r in rows),
        "better_than_one_group": sum(r["gap_to_one_group"] < 0 for r in rows),
        "of": len(rows),
    }


def goals(summary: dict[str, Any], records: list[dict[str, Any]], method: str = HIDLR) -> list[dict[str, Any]]:
    """The goals of the benchmark for ``method``, each ``{"goal", "measured", "met", "count", "of"}``
    (``met`` None when nothing was measured).

    1. within 1% of the best grid point (or better) on at least 75% of the workloads;
    2. better (lower median loss) than the one-group rule on at least 75% of the workloads;
    3. median rank 1 among the single-run methods;
    4. start-rate invariance: on every workload the worst start rate's median loss is within 2%
       of the best's;
    5. no run of the method (any workload, seed or start rate) :func:`failed`: it diverged, or
       ended above its initial validation loss.
    """
    wls = summary["workloads"]
    tuned_hits, one_group_hits = _hits(summary, method)
    out = [
        _share(
            f"{method} within {WITHIN_TUNED:.0%} of the best grid point (or better) on >= {SHARE:.0%} of the workloads",
            tuned_hits,
        ),
        _share(
            f"{method} better than the one-group rule ({ONE_GROUP}) on >= {SHARE:.0%} of the workloads", one_group_hits
        ),
    ]
    mr = summary.get("median_rank_single", {}).get(method)
    if mr is None:
        out.append(_goal("median rank 1 among the single-run methods", "not measured", None))
    else:
        out.append(
            _goal(
                "median rank 1 among the single-run methods",
                f"median rank {mr['median']:g} over {mr['n']} workloads",
                mr["median"] == 1,
            )
        )
    inv = start_rates(records)
    inv_hits = [inv[wl][method]["within"] for wl in wls if method in inv.get(wl, {})]
    name = f"start-rate invariance: worst start rate within {INVARIANCE:.0%} of the best on every workload"
    if inv_hits:
        out.append(
            _goal(
                name,
                f"within on {sum(inv_hits)} of the {len(inv_hits)} workloads measured at several "
                f"start rates ({len(wls)} workloads in all)",
                all(inv_hits) and len(inv_hits) == len(wls),
                sum(inv_hits),
                len(inv_hits),
            )
        )
    else:
        out.append(_goal(name, "not measured", None))
    mine = [r for r in records if r["status"] != "skipped" and (r["method"] == method or r.get("varies") == method)]
    bad = [r for r in mine if failed(r)]
    out.append(
        _goal(
            f"no run of {method} diverges or ends above its initial loss (any workload, seed, start rate)",
            f"{len(bad)} of {len(mine)} runs failed" if mine else "not measured",
            (not bad) if mine else None,
            len(bad),
            len(mine),
        )
    )
    return out
