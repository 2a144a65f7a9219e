"""Markdown report of the learning-rate benchmark (from the results dictionary of ``run``)."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import Any

from hidlr.bench.lr import markdown as md
from hidlr.bench.lr.report_goals import goal_lines, start_rate_section
from hidlr.bench.lr.scores import finite_or_inf

LR_FREE = ("prodigy", "dadapt-adam", "sf-adamw", "ldog")


def headline(results: dict[str, Any]) -> list[str]:
    """The per-workload comparison table and the goal check."""
    summ = results["summary"]
    lines = [
        "## Headline: final validation loss, median over seeds",
        "",
        "`tuned` is the best of the grid (7 runs per seed); every other column is one run per seed. "
        "`gap to tuned`: (hidlr-diag - tuned) / |tuned|. "
        "`within 1%`: Hi-DLR diag's median loss <= tuned + 1% of |tuned|. "
        "`rank`: Hi-DLR diag's rank among the single-run methods (1 = best).",
        "",
    ]
    header = [
        "workload",
        "tuned (lr)",
        "default",
        "default-wcos",
        "hidlr-diag",
        "gap to tuned",
        "hidlr-full",
        "gen",
        "gen-optim",
        "fixed-ratio",
        "best LR-free",
        "within 1%",
        "rank",
    ]
    rows, wins, total = [], 0, 0
    for wl, w in summ["workloads"].items():
        t = w["table"]

        def med(m: str) -> str:
            return md.num(t[m]["loss"]["median"]) if m in t else "n/a"

        tuned = f"{med('tuned')} ({md.num(t['tuned']['lr'], 2)})" if "tuned" in t else "n/a"
        free = [(t[m]["loss"]["median"], m) for m in LR_FREE if m in t]
        best_free = f"{md.num(min(free)[0])} ({min(free)[1]})" if free else "n/a"
        within = w["hidlr_within_1pct_of_tuned"]
        if within is not None:
            total += 1
            wins += bool(within)
        rank = w["rank_single"].get("hidlr-diag")
        gap = "n/a"
        if "tuned" in t and "hidlr-diag" in t:
            h, b = t["hidlr-diag"]["loss"]["median"], t["tuned"]["loss"]["median"]
            pct = 100 * (h - b) / abs(b) if math.isfinite(h) and math.isfinite(b) and b else None
            gap = "—" if pct is None else (f"{pct:+.1f}%" if abs(pct) < 1000 else f"{pct:+.1e}%")
        rows.append(
            [
                wl,
                tuned,
                med("default"),
                med("default-wcos"),
                med("hidlr-diag"),
                gap,
                med("hidlr-full"),
                med("gen"),
                med("gen-optim"),
                med("fixed-ratio"),
                best_free,
                {True: "yes", False: "no", None: "n/a"}[within],
                md.num(rank, 3) if rank is not None else "n/a",
            ]
        )
    lines += md.table(header, rows)
    lines += ["", f"Hi-DLR diag within 1% of the tuned grid (or better) on **{wins} of {total}** workloads.", ""]
    mr = summ["median_rank_single"]
    if mr:
        lines += [
            "### Median rank over workloads among single-run methods",
            "",
            *md.table(
                ["method", "median rank", "workloads"],
                [[m, md.num(v["median"], 3), str(v["n"])] for m, v in mr.items()],
            ),
            "",
        ]
        best = min(v["median"] for v in mr.values())
        leaders = [m for m, v in mr.items() if v["median"] == best]
        lines += [f"Best median rank: {', '.join(leaders)} ({md.num(best, 3)}).", ""]
    methods = list(mr)
    if methods:
        lines += [
            "### Rank per workload among single-run methods (1 = lowest median final loss)",
            "",
            *md.table(
                ["workload"] + methods,
                [
                    [wl] + [md.num(w["rank_single"].get(m), 3) if m in w["rank_single"] else "n/a" for m in methods]
                    for wl, w in summ["workloads"].items()
                ],
            ),
            "",
        ]
    mt = summ["median_rank_with_tuned"]
    if mt:
        lines += [
            "### Median rank including the tuned grid (which costs 7 runs)",
            "",
            *md.table(
                ["method", "median rank", "workloads"],
                [[m, md.num(v["median"], 3), str(v["n"])] for m, v in mt.items()],
            ),
            "",
        ]
    return lines


def commits(results: dict[str, Any]) -> list[str]:
    """Which runs ran at which commit (methods and workloads per commit)."""
    by: dict[str, dict[str, Any]] = {}
    for r in results["records"]:
        c = by.setdefault(str(r.get("commit")), {"runs": 0, "methods": set(), "workloads": set()})
        c["runs"] += 1
        c["methods"].add(r["method"])
        c["workloads"].add(r["workload"])
    if len(by) < 2:
        return []
    rows = [[c, str(v["runs"]), ", ".join(sorted(v["methods"])), str(len(v["workloads"]))] for c, v in by.items()]
    return [
        "## Runs by commit",
        "",
        "The stored runs were made at different commits (each run records its own; "
        "`+dirty`: uncommitted source changes).",
        "",
        *md.table(["commit", "runs", "methods", "workloads"], rows),
        "",
    ]


def overhead(results: dict[str, Any]) -> list[str]:
    summ = results["summary"]["workloads"]
    names = sorted({m for w in summ.values() for m in (w["overhead_vs_default"] or {})})
    if not names:
        return []
    lines = [
        "## Time per training step against the base optimizer at its default",
        "",
        "Median over seeds of (method's mean step time) / (base optimizer's mean step time), each "
        "pair from the same seed and the same commit's run (probe forward passes included, validation "
        "excluded). A result store merged from parts run at different times pairs only runs of one "
        "commit: a ratio across parts would measure the machine's load; —: no such pair. The runs of a "
        "part are sequential, so load that changes between them still shows; `hidlr bench overhead` "
        "measures the optimizer's overhead in lockstep.",
        "",
    ]
    rows = [[wl] + [md.num((w["overhead_vs_default"] or {}).get(m), 3) for m in names] for wl, w in summ.items()]
    return lines + md.table(["workload"] + names, rows) + [""]


def ablations(results: dict[str, Any]) -> list[str]:
    """Hi-DLR diag against its ablations on the seeds the ablations ran on: median final loss
    (and time per step against the base optimizer at its default, paired by seed)."""
    names = [m for m, spec in results["methods"].items() if spec["family"] == "ablation"]
    recs = [r for r in results["records"] if r["status"] != "skipped"]
    seeds = sorted({r["seed"] for r in recs if r["method"] in names})
    if not names or not seeds:
        return []
    cols = ["hidlr-diag"] + names
    lines = [
        "## Ablations of Hi-DLR diag",
        "",
        f"Seeds {seeds} only (the ablations ran on these; hidlr-diag restricted to the same seeds). "
        "Median final validation loss; in brackets the time per step relative to the base optimizer "
        "at its default (paired by seed). Options: "
        + "; ".join(f"{m}: {results['methods'][m]['description']}" for m in names)
        + ".",
        "",
    ]
    rows = []
    for wl in results["summary"]["workloads"]:
        cell = []
        base = {
            r["seed"]: r["step_time"]
            for r in recs
            if r["workload"] == wl and r["method"] == "default" and r["seed"] in seeds
        }
        for m in cols:
            runs = [r for r in recs if r["workload"] == wl and r["method"] == m and r["seed"] in seeds]
            if not runs:
                cell.append("n/a")
                continue
            loss = median(finite_or_inf(r["final_loss"]) for r in runs)
            ratios = [
                r["step_time"] / base[r["seed"]]
                for r in runs
                if r["seed"] in base and r["step_time"] and base[r["seed"]]
            ]
            cell.append(f"{md.num(loss)} ({md.num(median(ratios), 2) if ratios else '—'}x)")
        rows.append([wl] + cell)
    return lines + md.table(["workload"] + cols, rows) + [""]


def workload_tables(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Per workload",
        "",
        "Loss and accuracy: median [min, max] over seeds. Steps/time to target: "
        "median over seeds of the first evaluation at or below the target (— = not reached by the "
        "median seed). Time is training time only, in seconds.",
        "",
    ]
    for wl, w in results["summary"]["workloads"].items():
        spec = results["workloads"][wl]
        lines += [
            f"### {wl}",
            "",
            f"{spec['description']}. Steps {spec['steps']}, batch {spec['batch_size']}, "
            f"target loss {spec['target']}, default lr {spec['default_lr']:g}.",
            "",
        ]
        header = [
            "method",
            "lr",
            "val loss",
            "val acc",
            "steps to target",
            "time to target (s)",
            "ms/step",
            "failed",
            "runs",
        ]
        rows = []
        for m, row in sorted(w["table"].items(), key=lambda t: (t[1]["loss"]["median"], t[0])):
            name = m if m != "tuned" else f"tuned (= {row['tuned_from']})"
            rows.append(
                [
                    name,
                    md.num(row["lr"], 3),
                    md.spread_cell(row["loss"]),
                    md.spread_cell(row["acc"], 3),
                    md.spread_cell(row["steps_to_target"]),
                    md.spread_cell(row["time_to_target"], 3),
                    md.num(row["step_time"]["median"] * 1e3, 3),
                    str(row["failed"]),
                    str(row["runs"]),
                ]
            )
        lines += md.table(header, rows) + [""]
    return lines


def skipped(results: dict[str, Any]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for r in results["records"]:
        if r["status"] in ("skipped", "error"):
            seen.setdefault((r["workload"], r["method"]), f"{r['status']}: {r['reason']}")
    if not seen:
        return []
    return ["## Skipped or failed methods", "", *[f"- {w} / {m}: {why}" for (w, m), why in seen.items()], ""]


def write_report(results: dict[str, Any], path: Path) -> None:
    """Write the Markdown report to ``path``."""
    env = results["environment"]
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    parts = results.get("parts", [])
    first = "; the first part's" if parts else ""
    lines = [
        "# Learning-rate benchmark" + (" (quick mode)" if results["quick"] else ""),
        "",
        f"- Started {results['started']}; duration {results['duration_s']:.0f} s"
        + (" (all parts)" if parts else "")
        + f"; seeds {results['seeds']}.",
        f"- Machine{first}: {env['cpu']} ({env['cpu_count']} logical CPUs, shared), {env['platform']}; "
        f"torch threads {env['torch_threads']}; load average at start {env['load_average_at_start']}.",
        f"- Python {env['python']}; hidlr {env['hidlr']}"
        + ("" if parts else f" (commit {env['git_commit']})")
        + f"; {pk}"
        + (" (versions of the first part; every part's commit below)" if parts else "")
        + ".",
        f"- Methods: {', '.join(results['methods'])}.",
        *[
            f"- Part {i + 1}: methods {', '.join(p['methods'])}; seeds {p['seeds']}; started {p['started']}; "
            f"{p['duration_s']:.0f} s; {p.get('runs', '?')} runs"
            + (
                f" ({p['runs_kept']} not replaced by a later part)"
                if p.get("runs_kept", p.get("runs")) != p.get("runs")
                else ""
            )
            + f"; commit {p.get('commit')}"
            + (" (interrupted: the runs it completed)" if p.get("interrupted") else "")
            + "."
            for i, p in enumerate(parts)
        ],
        "",
        "Raw per-run records (curves, per-group learning rates) are in `results.json`.",
        "",
    ]
    lines += [
        "## Workloads",
        "",
        *md.table(
            ["workload", "description", "base", "steps", "batch", "target", "fixed ratio"],
            [
                [
                    n,
                    w["description"],
                    w["base"],
                    str(w["steps"]),
                    str(w["batch_size"]),
                    md.num(w["target"]),
                    ", ".join(f"{k}×{v:g}" for k, v in list(w["ratios"].items())[:3])
                    + (" …" if len(w["ratios"]) > 3 else "")
                    or "—",
                ]
                for n, w in results["workloads"].items()
            ],
        ),
        "",
    ]
    lines += headline(results)
    lines += goal_lines(results)
    lines += start_rate_section(results)
    lines += overhead(results)
    lines += ablations(results)
    for name in results.get("plots", []):
        lines += [f"![{name}]({name})", ""]
    lines += workload_tables(results)
    lines += commits(results)
    lines += skipped(results)
    path.write_text("\n".join(lines) + "\n")
