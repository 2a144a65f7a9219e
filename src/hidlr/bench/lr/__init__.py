"""Learning-rate benchmark: Hi-DLR against a tuned learning-rate sweep, the base optimizer's default
and learning-rate-free optimizers, over small workloads that run on a CPU in seconds.

Entry point: :func:`run` (the ``hidlr bench lr`` command calls it). It writes ``results.json`` (every
run's record and the summary), ``report.md`` and PNG plots into ``out_dir``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from hidlr.bench import harness
from hidlr.bench.lr import methods as methods_mod
from hidlr.bench.lr import workloads as workloads_mod
from hidlr.bench.lr.environment import environment
from hidlr.bench.lr.goals import goals, goals_by_seed_set, goals_paired, start_rates, start_rates_paired
from hidlr.bench.lr.runner import run_one
from hidlr.bench.lr.scores import summarize

__all__ = ["combine", "full_summary", "rebuild", "run", "run_into_store"]


def run(
    out_dir: Path,
    quick: bool = False,
    seeds: int | None = None,
    workloads: list[str] | None = None,
    methods: list[str] | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    plots: bool = True,
    ablation_seeds: int = 1,
    first_seed: int = 0,
    lr0s: list[float] | None = None,
) -> dict[str, Any]:
    """Run the benchmark and write results.json, report.md and plots into ``out_dir``.

    Args:
        out_dir: output folder (created if missing).
        quick: short budgets (about a quarter of the steps), one seed by default, and a small
            method subset (default rate, two grid points, Prodigy, GeN, Hi-DLR diag) unless
            ``methods`` is given.
        seeds: number of seeds (0..seeds-1); default 1 in quick mode, 3 otherwise.
        workloads: workload names (default: all registered).
        methods: method names (default: all, or the quick subset).
        progress: show a rich progress bar.
        max_steps: cap on each run's steps (for smoke tests).
        plots: write the PNG plots (needs matplotlib).
        ablation_seeds: the ablation methods (Hi-DLR variants) run on the first this many seeds
            only (they cost the most and answer narrower questions).
        first_seed: seeds are ``first_seed .. first_seed + seeds - 1`` (to split a run over
            processes; merge the parts with :func:`combine`).
        lr0s: start rates: every named method that adapts a start rate (Hi-DLR, GeN) also runs
            from each of these (``<method>@lr0=<rate>``); a variant at the workload's default rate
            reuses the method's own run.

    Returns:
        The results dictionary that is also written to ``results.json``.
    """
    seeds = (1 if quick else 3) if seeds is None else seeds
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if ablation_seeds < 0:
        raise ValueError(f"ablation_seeds must be >= 0, got {ablation_seeds}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    wls = workloads_mod.get(workloads)
    ms = methods_mod.get(methods if methods is not None else (methods_mod.QUICK_METHODS if quick else None), lr0s)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    seed_list = list(range(first_seed, first_seed + seeds))
    env = environment()
    results: dict[str, Any] = {
        "benchmark": "lr",
        "quick": quick,
        "seeds": seed_list,
        "started": start,
        "duration_s": None,
        "environment": env,
        "workloads": {
            w.name: {
                "description": w.description,
                "base": w.base,
                "default_lr": w.default_lr,
                "grid": list(w.grid),
                "steps": w.quick_steps if quick else w.steps,
                "batch_size": w.batch_size,
                "target": w.target,
                "ratios": w.ratios,
                "has_acc": w.has_acc,
            }
            for w in wls
        },
        "methods": {m.name: _method_spec(m) for m in ms},
    }
    # Written as the run goes, so that an interrupted run keeps what it measured (see combine).
    journal = harness.Journal(out_dir, "meta.json", "records.jsonl")
    journal.start(results)
    records: list[dict[str, Any]] = []
    base_runs: dict[tuple[int, str, tuple[str, float]], dict[str, Any]] = {}
    jobs = [(s, w, m) for s in seed_list for w in wls for m in ms if m.family != "ablation" or s < ablation_seeds]
    try:
        with harness.progress("bench lr", len(jobs), enabled=progress) as advance:
            for seed, wl, m in jobs:
                steps = wl.quick_steps if quick else wl.steps
                if max_steps is not None:
                    steps = min(steps, max_steps)
                key = _base_run_key(wl, m)
                t_run = time.perf_counter()
                if key is not None and (seed, wl.name, key) in base_runs:
                    # The same run under another name (a grid point at the default rate is "default";
                    # a start-rate variant at the default rate is its method): reuse it.
                    rec = dict(
                        base_runs[(seed, wl.name, key)],
                        method=m.name,
                        family=m.family,
                        varies=m.varies,
                        lr0=m.lr0,
                        reused_from=base_runs[(seed, wl.name, key)]["method"],
                    )
                else:
                    rec = run_one(wl, m, seed, steps, n_evals=10 if quick else 20)
                    if key is not None:
                        base_runs[(seed, wl.name, key)] = rec
                rec["wall_s"] = time.perf_counter() - t_run
                rec["commit"] = env["git_commit"]
                records.append(rec)
                journal.append(rec)
                advance(f"{wl.name} / {m.name} / seed {seed}")
    finally:
        torch.set_num_threads(threads)
    results.update(duration_s=time.perf_counter() - t0, records=records, summary=full_summary(records))
    write_outputs(results, out_dir, plots=plots)
    return results


def full_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`summarize` plus the start-rate table and the goals."""
    summary = summarize(records)
    order = {name: i for i, name in enumerate(workloads_mod.all_workloads())}  # the registry's order
    summary["workloads"] = dict(sorted(summary["workloads"].items(), key=lambda kv: order.get(kv[0], len(order))))
    summary["start_rate"] = start_rates(records)
    summary["start_rate_paired"] = start_rates_paired(records)
    summary["goals"] = goals(summary, records)
    summary["goals_by_seed_set"] = goals_by_seed_set(records)
    summary["goals_paired"] = goals_paired(records)
    return summary


def write_outputs(results: dict[str, Any], out_dir: Path, plots: bool = True) -> None:
    """Write results.json, the PNG plots (optional) and report.md for ``results`` into ``out_dir``."""
    from hidlr.bench.lr.report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results["plots"] = []
    harness.write_json(out_dir / "results.json", results)  # first: plots may fail
    if plots:
        from hidlr.bench.lr.plots import write_plots

        results["plots"] = write_plots(results, out_dir)
    write_report(results, out_dir / "report.md")


def load_part(src: Path) -> dict[str, Any]:
    """A run's results: its ``results.json``, or, for a run that was interrupted, its ``meta.json``
    and the records it completed (``records.jsonl``; marked ``"interrupted": True``)."""
    src = Path(src)
    if (src / "results.json").exists():
        return _with_commits(json.loads((src / "results.json").read_text()))
    if not (src / "meta.json").exists():
        raise FileNotFoundError(f"{src} holds neither results.json nor meta.json")
    journal = harness.Journal(src, "meta.json", "records.jsonl")
    part = journal.header()
    part["records"] = journal.entries()
    part["duration_s"] = sum(r.get("wall_s") or 0.0 for r in part["records"])
    part["interrupted"] = True
    return _with_commits(part)


def _with_commits(part: dict[str, Any]) -> dict[str, Any]:
    """Give every record of ``part`` its commit: its own, else that of the sub-part (of an earlier
    merge) that ran its method and seed, else the part's."""
    default = part.get("environment", {}).get("git_commit")
    for r in part["records"]:
        if r.get("commit"):
            continue
        subs = [p for p in part.get("parts", []) if r["method"] in p["methods"] and r["seed"] in p["seeds"]]
        r["commit"] = subs[0]["commit"] if subs else default
    return part


def rebuild(store: Path, plots: bool = True) -> dict[str, Any]:
    """Rewrite a result store's ``results.json``, report and plots from its parts
    (``store/parts/*/``, each a run's output), merged oldest first: a run in a newer part replaces
    the same (workload, method, seed) of an older one."""
    store = Path(store)
    dirs = [d for d in (store / "parts").glob("*") if d.is_dir()] if (store / "parts").is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"{store / 'parts'} holds no parts")
    started = {d: load_part(d)["started"] for d in dirs}
    return combine(sorted(dirs, key=lambda d: (started[d], d.name)), store, plots=plots, replace=True)


def run_into_store(store: Path, part: str, **run_args: Any) -> dict[str, Any]:
    """:func:`run` into ``store/parts/<part>/`` (no plots there), then :func:`rebuild` the store:
    the new runs join the stored ones and replace those of the same workload, method and seed."""
    if not part or "/" in part or part.startswith("."):
        raise ValueError(f"part must be a plain folder name, got {part!r}")
    run(Path(store) / "parts" / part, plots=False, **run_args)
    return rebuild(Path(store))


def combine(sources: list[Path], out_dir: Path, plots: bool = True, replace: bool = False) -> dict[str, Any]:
    """Merge the records of several ``results.json`` files (e.g. a main run and an ablation run of
    the same code, possibly with different seeds) and rewrite one summary, report and plots.

    Runs of the same (workload, method, seed) must not appear twice, unless ``replace``: then a
    later source's run replaces an earlier one's (a re-run at a newer commit). Durations add up;
    the environment and settings of the first source are kept, with each source's listed in
    ``parts``; every record carries the commit it ran at.
    """
    parts = [load_part(Path(s)) for s in sources]
    if not parts:
        raise ValueError("combine needs at least one source")
    merged: dict[tuple[str, str, int], dict[str, Any]] = {}
    for p in parts:
        if p["quick"] != parts[0]["quick"]:
            raise ValueError("cannot combine quick and full runs")
        for r in p["records"]:
            key = (r["workload"], r["method"], r["seed"])
            if key in merged and not replace:
                raise ValueError(f"run {key} appears in more than one source")
            merged.pop(key, None)
            merged[key] = r
    records = list(merged.values())
    results = dict(parts[0])
    results["records"] = records
    results["seeds"] = sorted({s for p in parts for s in p["seeds"]})
    results["duration_s"] = sum(p["duration_s"] for p in parts)
    for p in parts[1:]:
        results["workloads"] = {**results["workloads"], **p["workloads"]}
        results["methods"] = {**results["methods"], **p["methods"]}
    kept = {id(r) for r in records}
    results["parts"] = [
        {
            "source": str(s),
            "started": p["started"],
            "duration_s": p["duration_s"],
            "seeds": p["seeds"],
            "methods": list(p["methods"]),
            "runs": len(p["records"]),
            "runs_kept": sum(id(r) in kept for r in p["records"]),
            "commit": p["environment"].get("git_commit"),
            "interrupted": bool(p.get("interrupted")),
        }
        for s, p in zip(sources, parts)
    ]
    order = {name: i for i, name in enumerate(workloads_mod.all_workloads())}
    results["workloads"] = dict(sorted(results["workloads"].items(), key=lambda kv: order.get(kv[0], len(order))))
    results["summary"] = full_summary(records)
    write_outputs(results, out_dir, plots=plots)
    return results


def _method_spec(m: methods_mod.Method) -> dict[str, Any]:
    return {
        "family": m.family,
        "description": m.description,
        "hidlr_options": m.hidlr_options,
        "varies": m.varies,
        "lr0": m.lr0,
    }


def _base_run_key(wl: workloads_mod.Workload, m: methods_mod.Method) -> tuple[str, float] | None:
    """Identifies runs that are the same under different names: (method, start rate) of a plain
    base-optimizer run (default or grid point) or of a rate-adapting method; else None."""
    if m.name == "default":
        return "base", wl.default_lr
    if m.family == "grid":
        i = int(m.name.removeprefix("grid"))
        return ("base", wl.grid[i]) if i < len(wl.grid) else None
    if m.takes_lr0:
        return m.varies or m.name, wl.default_lr if m.lr0 is None else m.lr0
    return None
