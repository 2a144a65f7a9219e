"""The goals and start-rate sections of the learning-rate benchmark's report (the measures:
:mod:`hidlr.bench.lr.goals`)."""

from __future__ import annotations

import math
from typing import Any

from hidlr.bench.lr import markdown as md


def goal_lines(results: dict[str, Any]) -> list[str]:
    """The goals of the benchmark for Hi-DLR diag, one measured line each."""
    gs = results["summary"].get("goals") or []
    if not gs:
        return []
    mark = {True: "**met**", False: "**not met**", None: "not measured"}
    lines = [
        "## Goals (Hi-DLR diag, one default configuration)",
        "",
        *[
            f"- {g['goal']}: " + (f"{g['measured']} — {mark[g['met']]}." if g["met"] is not None else "not measured.")
            for g in gs
        ],
        "",
    ]
    sets = results["summary"].get("goals_by_seed_set") or []
    if sets:
        lines += [
            "The first two goals on each set of three seeds, each against that set's own tuned grid (medians "
            "over the set's seeds; how much of a count is the draw of seeds):",
            "",
            "| seeds | within 1% of the tuned grid | better than the one-group rule |",
            "| --- | --- | --- |",
            *[
                f"| {', '.join(map(str, g['seeds']))} | {g['within']} of {g['of']} | "
                f"{g['better_than_one_group']} of {g['of']} |"
                for g in sets
            ],
            "",
        ]
    return lines + paired_goal_lines(results["summary"].get("goals_paired"))


def paired_goal_lines(paired: dict[str, Any] | None) -> list[str]:
    """The first two goals paired by seed, the grid scored out of sample (:func:`goals_paired`)."""
    if not paired or not paired["rows"]:
        return []
    of = paired["of"]
    return [
        "The same two goals paired by seed, with the grid scored out of sample. For each seed, the grid's "
        "rate is the one with the lowest median over the *other* seeds, run on that seed. Each cell is the "
        "median over seeds of Hi-DLR diag's relative gap to that run, or to the one-group rule's run on "
        "the same seed; 'seeds lower' counts those where Hi-DLR diag ends lower (`docs/diagnosis.md`, "
        "round 12):",
        "",
        "| workload | gap to the tuned grid | seeds lower | gap to the one-group rule | seeds lower |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {r['workload']} | {md.gap(r['gap_to_grid'])} | {r['lower_than_grid']} of {r['seeds']} | "
            f"{md.gap(r['gap_to_one_group'])} | {r['lower_than_one_group']} of {r['seeds']} |"
            for r in paired["rows"]
        ],
        f"| **goal count** | within 1%: {paired['within']} of {of} | | lower: {paired['better_than_one_group']} "
        f"of {of} | |",
        "",
    ]


def start_rate_section(results: dict[str, Any]) -> list[str]:
    """Final loss against the start rate: per workload and method, the median loss at each start
    rate, the gap between the worst and the best, and the failed runs."""
    table = results["summary"].get("start_rate") or {}
    if not table:
        return []
    rates = sorted({float(r) for w in table.values() for m in w.values() for r in m["by_lr0"]})
    lines = [
        "## Start-rate invariance",
        "",
        "Median final validation loss over seeds from each start rate lr0 (a method's own run counts at "
        "the workload's default rate). `gap`: (worst - best) / |best| over the start rates; `within 2%`: "
        "worst <= best + 2% of |best|; `failed`: runs (any seed and start rate) that diverged or ended above "
        "their initial validation loss; "
        "— = every run from that rate failed (median).",
        "",
    ]
    header = ["workload", "method"] + [f"lr0={r:g}" for r in rates] + ["gap", "within 2%", "failed"]
    rows = []
    for wl, methods in table.items():
        for m, row in sorted(methods.items()):
            by = {float(k): v for k, v in row["by_lr0"].items()}
            gap = row["gap"]
            gap_s = "—" if gap is None or not math.isfinite(gap) else f"{100 * gap:.1f}%"
            rows.append(
                [wl, m]
                + [md.num(by[r]) if r in by else "" for r in rates]
                + [gap_s, "yes" if row["within"] else "no", f"{row['failed']} of {row['runs']}"]
            )
    lines += md.table(header, rows)
    lines += ["", *_within_counts(table, "{m}: within 2% over its start rates on {k} of {n} workloads."), ""]
    return lines + paired_start_rate_lines(results["summary"].get("start_rate_paired"))


def _within_counts(table: dict[str, dict[str, dict[str, Any]]], template: str) -> list[str]:
    """One line per method: on how many workloads of a start-rate table its row is ``within``
    (``template`` with the fields ``m``, ``k`` and ``n``)."""
    by_method: dict[str, list[bool]] = {}
    for methods in table.values():
        for m, row in methods.items():
            by_method.setdefault(m, []).append(bool(row["within"]))
    return [template.format(m=m, k=sum(v), n=len(v)) for m, v in sorted(by_method.items())]


def paired_start_rate_lines(table: dict[str, Any] | None) -> list[str]:
    """Start-rate invariance paired by seed (:func:`start_rates_paired`): per workload and method, each
    start rate's median relative gap to the same method's run from the default rate on the same seed."""
    if not table:
        return []
    rates = sorted({float(r) for w in table.values() for m in w.values() for r in m["by_lr0"]})
    lines = [
        "The same paired by seed: each cell is the median over seeds of the relative gap of a run from "
        "that start rate to the same method's run from the default rate on the same seed, with the seeds "
        "more than 1% higher / lower; `spread`: the largest of these gaps minus the smallest, the default "
        "rate counting as 0; `within 2%`: spread <= 2%.",
        "",
    ]
    header = ["workload", "method"] + [f"lr0={r:g}" for r in rates] + ["spread", "within 2%"]
    rows = []
    for wl, methods in table.items():
        for m, row in sorted(methods.items()):
            by = {float(k): v for k, v in row["by_lr0"].items()}
            cells = [f"{md.gap(by[r]['gap'])} ({by[r]['higher']}/{by[r]['lower']})" if r in by else "" for r in rates]
            spread = f"{100 * row['spread']:.1f}%" if math.isfinite(row["spread"]) else "—"
            rows.append([wl, m, *cells, spread, "yes" if row["within"] else "no"])
    lines += md.table(header, rows)
    return lines + ["", *_within_counts(table, "{m}, paired: within 2% on {k} of {n} workloads."), ""]
