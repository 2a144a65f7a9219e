"""Per-step time and memory overhead of HiDLR(Adam) against Adam, measured side by side.

Time (:mod:`~hidlr.bench.overhead.timing`): for each number of groups K, Adam and HiDLR(Adam) at
its defaults train the same deep MLP from the same weights on the same batches, in one process, in
lockstep (step t of one right after step t of the other, the order rotating), so that load on
a shared machine hits both alike; a third run in the lockstep, Adam stepping at the rates the HiDLR
run applied (recorded from an untimed run of it), follows HiDLR's trajectory and isolates HiDLR's own
work from the cost of Adam's step on other weights.
Figures per K: the ratio of total time over all steps and over the steps that did not refresh,
per repeat, summarised by the median over repeats. Memory (:mod:`~hidlr.bench.overhead.memory`):
each configuration in fresh processes, the tensor storage it holds beyond Adam's (deterministic
accounting) and its peak memory above Adam's, in copies of the parameters.
``run(out_dir)`` writes ``overhead.json`` and ``report.md``.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from hidlr.bench import harness
from hidlr.bench.overhead.memory import measure_memory
from hidlr.bench.overhead.timing import DEPTH, WIDTH, applied_rates, deep_mlp, paired_run, ratios, timed_run

GROUPS = (1, 4, 16, 64)
MEMORY_CONFIGS: dict[str, dict[str, Any] | None] = {
    "adam": None,
    "hidlr-default": {},
    "hidlr-rollback": {"rollback": True},
}
GOALS = {"all_steps": 1.10, "non_refresh_steps": 1.02, "extra_param_copies": 1.0}
# timed besides the defaults: (K, options), e.g. the gradient check on every step
VARIANTS: tuple[tuple[int, dict[str, Any]], ...] = ((1, {"check_finite": "refresh"}),)


def _label(k: int, options: dict[str, Any]) -> str:
    return str(k) + "".join(f", {name}={value!r}" for name, value in options.items())


def run(
    out_dir: Path,
    repeats: int = 3,
    steps: int = 1000,
    groups: tuple[int, ...] = GROUPS,
    batch: int = 128,
    device: str | None = None,
    threads: int | None = 1,
    progress: bool = True,
    memory: bool = True,
    memory_width: int = 512,
    memory_steps: int = 12,
    width: int = WIDTH,
    variants: tuple[tuple[int, dict[str, Any]], ...] = VARIANTS,
) -> dict[str, Any]:
    """Measure and write ``overhead.json`` and ``report.md`` into ``out_dir``; returns the results.
    ``variants``: (K, options) timed besides the defaults."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if threads:
        torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = harness.run_metadata(seeds="one (seed 0; the repeats re-run the same training)")
    configs = [(k, {}) for k in groups] + list(variants)
    runs: dict[str, list[dict[str, Any]]] = {_label(k, o): [] for k, o in configs}
    mem_jobs = [(k, name) for k in (min(groups), max(groups)) for name in MEMORY_CONFIGS] if memory else []
    with harness.progress(
        "overhead", repeats * len(configs) * 3 + len(configs) + len(mem_jobs), enabled=progress
    ) as tick:
        timed_run(groups[0], {}, 20, batch, device, width)  # warm-up
        rates = {}
        for k, options in configs:
            rates[_label(k, options)] = applied_rates(k, options, steps, batch, device, width)
            tick(f"rates of K={_label(k, options)}")
        for r in range(repeats):
            for k, options in configs:
                hidlr_run, adam_run, same_run = paired_run(
                    k, options, steps, batch, device, width, rates=rates[_label(k, options)]
                )
                tick(f"K={_label(k, options)} (repeat {r + 1})", 3)
                runs[_label(k, options)].append(
                    {
                        "ratios": ratios(hidlr_run, adam_run),
                        "same_rates_ratios": ratios(hidlr_run, same_run),
                        "adam_ms": 1e3 * statistics.mean(adam_run["seconds"]),
                        "hidlr_ms": 1e3 * statistics.mean(hidlr_run["seconds"]),
                        "refreshes": hidlr_run["refreshes"],
                        "probe_forwards": hidlr_run["probe_forwards"],
                    }
                )
        peaks: dict[str, dict[str, int]] = {}
        for k, name in mem_jobs:
            peaks[f"K={k} {name}"] = measure_memory(k, MEMORY_CONFIGS[name], memory_steps, memory_width, device)
            tick(f"memory K={k} {name}")
    result = _summarise(
        runs,
        peaks,
        meta,
        dict(
            repeats=repeats,
            steps=steps,
            batch=batch,
            device=device,
            width=width,
            memory_width=memory_width,
            memory_steps=memory_steps,
        ),
    )
    harness.write_json(out_dir / "overhead.json", result, indent=2)
    (out_dir / "report.md").write_text(report(result))
    return result


def per_k_summary(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """One K's figures from its repeats (each with ``ratios`` against Adam at its default rate and,
    since the same-rates run exists, ``same_rates_ratios`` against Adam at HiDLR's rates): medians
    over the repeats that have each figure."""

    def med(pair: str, key: str) -> float:
        """The median over the repeats that have the figure (None: a NaN written to JSON); NaN if none."""
        values = [v for r in reps if (v := r.get(pair, {}).get(key)) is not None and math.isfinite(v)]
        return statistics.median(values) if values else math.nan

    return {
        "ratio_all_steps": med("ratios", "all_steps"),
        "ratio_non_refresh_steps": med("ratios", "non_refresh_steps"),
        "cpu_ratio_all_steps": med("ratios", "all_steps_cpu"),
        "cpu_ratio_non_refresh_steps": med("ratios", "non_refresh_steps_cpu"),
        "wrapper_ratio_non_refresh_steps": med("ratios", "wrapper_non_refresh_steps"),
        "base_step_ratio_non_refresh_steps": med("ratios", "base_step_non_refresh_steps"),
        "same_rates_ratio_all_steps": med("same_rates_ratios", "all_steps"),
        "same_rates_ratio_non_refresh_steps": med("same_rates_ratios", "non_refresh_steps"),
        "same_rates_wrapper_ratio_non_refresh_steps": med("same_rates_ratios", "wrapper_non_refresh_steps"),
        "same_rates_base_step_ratio_non_refresh_steps": med("same_rates_ratios", "base_step_non_refresh_steps"),
        "adam_ms_per_step": statistics.median(r["adam_ms"] for r in reps),
        "hidlr_ms_per_step": statistics.median(r["hidlr_ms"] for r in reps),
        "refreshes": reps[0]["refreshes"],
        "probe_forwards": reps[0]["probe_forwards"],
        "repeats": reps,
    }


def rebuild(out_dir: Path) -> dict[str, Any]:
    """Recompute each K's figures from the repeats stored in ``out_dir/overhead.json`` and rewrite it
    and ``report.md`` (nothing is re-measured: a new summary or report layout over stored runs)."""
    path = out_dir / "overhead.json"
    result = json.loads(path.read_text())
    result["per_groups"] = {k: per_k_summary(v["repeats"]) for k, v in result["per_groups"].items()}
    harness.write_json(path, result, indent=2)
    (out_dir / "report.md").write_text(report(result))
    return result


def _summarise(
    runs: dict[str, list[dict[str, Any]]],
    peaks: dict[str, dict[str, int]],
    meta: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    per_k = {k: per_k_summary(reps) for k, reps in runs.items()}
    memory = {}
    for key, val in peaks.items():
        k = key.split()[0]
        adam = peaks[f"{k} adam"]
        memory[key] = {
            "tensor_bytes": val["tensors"],
            "peak_bytes": val["peak"],
            "extra_param_copies": (val["tensors"] - adam["tensors"]) / val["param_bytes"],
            "extra_peak_param_copies": (val["peak"] - adam["peak"]) / val["param_bytes"],
        }
    n_params = sum(p.numel() for p in deep_mlp(width=settings["width"]).parameters())
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    # the hidlr script, or python -m hidlr.cli
    from_cli = entry.name == "hidlr" or (entry.name == "cli.py" and entry.parent.name == "hidlr")
    command = " ".join(["hidlr", *(shlex.quote(a) for a in sys.argv[1:])]) if from_cli else None
    return {
        "command": command,
        "metadata": meta,
        "load_average_at_end": harness.load_average(),
        "workload": {
            "model": f"MLP {DEPTH} x Linear({settings['width']}, {settings['width']}), {2 * DEPTH} tensors",
            "params": n_params,
            **settings,
            "threads": torch.get_num_threads(),
        },
        "goals": GOALS,
        "per_groups": per_k,
        "memory": memory,
    }


def _same_rates(figures: dict[str, Any], key: str) -> float:
    """``key``'s figure against Adam at HiDLR's rates, or against Adam at its default rate in results
    made before the same-rates run was timed."""
    value = figures.get(f"same_rates_{key}")
    if value is None or math.isnan(value):
        value = figures.get(key)
    return math.nan if value is None else value


def report(result: dict[str, Any]) -> str:
    """The markdown report of :func:`run`'s result."""
    w, meta = result["workload"], result["metadata"]
    lines = [
        "# HiDLR(Adam) overhead against Adam, by number of groups\n",
        f"Workload: {w['model']} ({w['params']:,} parameters), batch {w['batch']}, {w['steps']} steps from "
        f"the start of training, {w['repeats']} repeats, {w['device']}, {w['threads']} thread(s), torch "
        f"{meta['torch']}, commit {meta['git_commit']}, started {meta['started']}.",
        f"Command: `{result['command'] or 'hidlr.bench.overhead.run(...)'}`. Load average at start "
        f"{meta['load_average_at_start']}, at end {result['load_average_at_end']} (a shared machine: "
        "Adam and HiDLR run in lockstep in one process, so ratios are valid, absolute times are not).\n",
        "| K groups (options) | Adam ms/step | HiDLR ms/step | time ratio to Adam at HiDLR's rates, all steps "
        "| same, non-refresh steps | time ratio, all steps | time ratio, non-refresh steps "
        "| CPU-time ratio, all steps | CPU-time ratio, non-refresh steps | wrapper alone, non-refresh steps "
        "| base step inside HiDLR / Adam's step at HiDLR's rates, non-refresh | refreshes | probe forwards |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, v in result["per_groups"].items():
        lines.append(
            f"| {k} | {v['adam_ms_per_step']:.2f} | {v['hidlr_ms_per_step']:.2f} | "
            f"{v.get('same_rates_ratio_all_steps', math.nan):.3f} | "
            f"{v.get('same_rates_ratio_non_refresh_steps', math.nan):.3f} | "
            f"{v['ratio_all_steps']:.3f} | {v['ratio_non_refresh_steps']:.3f} | {v['cpu_ratio_all_steps']:.3f} | "
            f"{v['cpu_ratio_non_refresh_steps']:.3f} | {_same_rates(v, 'wrapper_ratio_non_refresh_steps'):.3f} | "
            f"{_same_rates(v, 'base_step_ratio_non_refresh_steps'):.3f} | {v['refreshes']} | {v['probe_forwards']} |"
        )
    lines.append(
        "\nRatios: medians over repeats of per-repeat ratios (total HiDLR time over total Adam time "
        "of the same run; non-refresh: the steps that did not refresh, against Adam's same steps). "
        "Against Adam at HiDLR's rates: Adam stepping at the rates HiDLR applied at each step, on the same "
        "weights as HiDLR up to rounding, so the ratio is HiDLR's own work (the measure of the goals); "
        "the other time ratios are against Adam at its default rate, on its own trajectory, where "
        "Adam's step costs more or less with the weights it meets. "
        "Time: wall clock; CPU time: the training thread's CPU time (``time.thread_time``; on the CPU "
        "with one thread it is the work done, less exposed to other processes on a shared machine; it "
        "does not see accelerator time). Wrapper alone: 1 + HiDLR's own work on the non-refresh steps "
        "(its `step` call minus the base Adam step inside it) over the time of Adam at HiDLR's rates on "
        "the same steps; base step: the base Adam step inside HiDLR over that Adam's `step` call on the "
        "same steps (the same code on the same trajectory up to rounding; against Adam at its default "
        "rate in results made before that run existed). The first torch call after the backward pass "
        "pays a fixed cost, which falls in the wrapper's part for HiDLR and in the step for Adam: it raises the first "
        "figure and lowers the second a little. On CUDA both are host-side times. "
        f"Goals: at most {GOALS['all_steps']:.2f}x over all steps, {GOALS['non_refresh_steps']:.2f}x "
        "on non-refresh steps, flat in K."
    )
    per_rep = "; ".join(
        f"K={k}: "
        + ", ".join(
            f"{r['same_rates_ratios']['all_steps']:.3f}/{r['same_rates_ratios']['non_refresh_steps']:.3f} "
            f"({r['ratios']['all_steps']:.3f}/{r['ratios']['non_refresh_steps']:.3f})"
            for r in v["repeats"]
            if "same_rates_ratios" in r
        )
        for k, v in result["per_groups"].items()
    )
    lines.append(f"Per repeat, all/non-refresh steps against Adam at HiDLR's rates (at its default): {per_rep}.")
    if result["memory"]:
        peak = "peak allocated device memory" if w["device"].startswith("cuda") else "peak resident set"
        lines += [
            f"\n| configuration | extra tensor storage (parameter copies) | extra {peak} (parameter copies) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {key} | {v['extra_param_copies']:+.3f} | {v['extra_peak_param_copies']:+.2f} |"
            for key, v in result["memory"].items()
        ]
        lines.append(
            f"\nMemory: each configuration in fresh processes, {w['memory_steps']} steps of the same MLP at "
            f"width {w['memory_width']}, batch 32, in copies of the parameters beyond Adam's. Tensor storage "
            "(the goal's measure, deterministic): the distinct tensor storages reachable from Python "
            "(parameters, gradients, optimizer state, the wrapper's buffers, data), the maximum over the "
            "moments after each step and at the start of each probe call, minus Adam's. Peak: "
            f"{peak} above what the process held before training, minus Adam's, in a run without the "
            f"accounting (allocator-dependent). Goal: at most {GOALS['extra_param_copies']:.0f} extra copy at "
            "the defaults."
        )
    return "\n".join(lines) + "\n"
