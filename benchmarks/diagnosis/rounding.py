"""How far floating-point rounding alone moves the benchmark's figures (round 16 of
``docs/diagnosis.md``): the store's ``hidlr-diag`` runs against the same engine, options and seeds
re-run on another machine (``round4.py``'s ``hidlr+anneal=0.2``, e.g. round 13's ``round13-base-*``).
Nothing differs but the machine, so every difference is rounding that a chaotic run amplifies.
Per workload: seeds whose final losses agree to 1e-7, the range of the per-seed ratios, and the
change of the median over the seeds, beside the goal lines it would have to resolve (1% of the
tuned grid, 2% between start rates). With ``--grid OUT``, the same for the store's best grid point
on the workloads whose median moved by more than 1%, re-run (or read back from ``OUT``) here.

    .venv/bin/python benchmarks/diagnosis/rounding.py benchmarks/diagnosis/runs/round13-base-*.jsonl \
        --grid benchmarks/diagnosis/results/round16-grid.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from common import fixed_method, run_logged
from paired import load
from seed_sets import DEFAULT, ROUND4_DEFAULT, STORE, runs

HEADER = (
    "| workload | method | seeds equal to 1e-7 | per-seed ratio, here / store | median, store | median, here | change |"
)


def compare(workload: str, method: str, old: list[float], new: list[float]) -> float:
    """Print one row; the change of the median."""
    equal = sum(abs(x - y) <= 1e-7 * abs(x) for x, y in zip(old, new))
    ratios = [y / x for x, y in zip(old, new)]
    change = statistics.median(new) / statistics.median(old) - 1
    print(
        f"| {workload} | {method} | {equal} of {len(old)} | {min(ratios):.3f}-{max(ratios):.3f} | "
        f"{statistics.median(old):.4g} | {statistics.median(new):.4g} | {change:+.1%} |"
    )
    return change


def best_grid_point(workload: str, seeds: list[int]) -> tuple[float, list[float]]:
    """The store's best grid rate on ``workload`` (lowest median over ``seeds``) and its losses."""
    records = [r for r in json.loads(STORE.read_text())["records"] if r["workload"] == workload]
    points: dict[float, dict[int, float]] = {}
    for r in records:
        if r["family"] == "grid" and r["seed"] in seeds:
            ok = r["status"] == "ok" and r["final_loss"] is not None and math.isfinite(r["final_loss"])
            points.setdefault(r["lr"], {})[r["seed"]] = r["final_loss"] if ok else math.inf
    lr = min(points, key=lambda k: statistics.median(points[k].values()))
    return lr, [points[lr][s] for s in seeds]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path, help="run files holding the re-run default")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(9)))
    ap.add_argument("--grid", type=Path, help="re-run the best grid point where the median moved, to this file")
    a = ap.parse_args()
    store, rerun = runs([]), load(a.files)
    print(HEADER)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    moved = []
    for (w, m), by_seed in sorted(rerun.items()):
        if m != ROUND4_DEFAULT or not all(s in by_seed and s in store.get((w, DEFAULT), {}) for s in a.seeds):
            continue
        change = compare(w, DEFAULT, [store[(w, DEFAULT)][s] for s in a.seeds], [by_seed[s] for s in a.seeds])
        if abs(change) > 0.01:
            moved.append(w)
    print(f"\nWorkloads whose median moved by more than 1%: {len(moved)} ({', '.join(moved)})")
    if a.grid is None:
        return
    a.grid.parent.mkdir(parents=True, exist_ok=True)
    print("\n" + HEADER)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for w in moved:
        lr, old = best_grid_point(w, a.seeds)
        new = [run_logged(a.grid, w, fixed_method(lr), s, {"lr0": "default"})["final_loss"] for s in a.seeds]
        compare(w, f"grid at {lr:g}", old, new)


if __name__ == "__main__":
    main()
