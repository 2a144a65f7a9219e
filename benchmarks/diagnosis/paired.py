"""Two variants of run files compared seed by seed, on runs made on the same machine (round 13 of
``docs/diagnosis.md``): per workload the median final loss of each, the median over seeds of the
first's gap to the second, and on how many seeds the first ends lower (higher) by more than 1%;
then the totals and the geometric mean of the ratios (positive losses only). The stored benchmark
was made on another machine, whose floating-point rounding sends the chaotic workloads
(digits-resnet-bn, digits-mlp-head-sgd) down other paths, so a prototype is compared with the
engine's default re-run beside it, not with the store.

    .venv/bin/python benchmarks/diagnosis/paired.py benchmarks/diagnosis/results/round13-*.jsonl \
        --first hidlr+anneal=0.2+followdescent --second hidlr+anneal=0.2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from hidlr.bench.lr.goals import relative_gap


def load(files: list[Path], lr0: str = "default") -> dict[tuple[str, str], dict[int, float]]:
    """(workload, method) -> seed -> final loss (inf for a failed run), at one start rate (``"default"``:
    the workload's own; else a number, as ``round4.py --lr0`` records it)."""
    runs: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for f in files:
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r.get("lr0") != ("default" if lr0 == "default" else float(lr0)):
                continue
            ok = r["status"] == "ok" and r["final_loss"] is not None and math.isfinite(r["final_loss"])
            runs[(r["workload"], r["method"])][r["seed"]] = r["final_loss"] if ok else math.inf
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--first", required=True)
    ap.add_argument("--second", required=True)
    ap.add_argument("--lr0", default="default", help="the start rate compared (default: the workload's own)")
    a = ap.parse_args()
    runs = load(a.files, a.lr0)
    lower = higher = 0
    logs: list[float] = []
    print(f"| workload | {a.first} | {a.second} | median paired gap | seeds lower | seeds higher |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w in sorted({w for w, _ in runs}):
        x, y = runs.get((w, a.first), {}), runs.get((w, a.second), {})
        seeds = sorted(set(x) & set(y))
        if not seeds:
            continue
        gaps = [relative_gap(x[s], y[s]) for s in seeds]
        lo, hi = sum(g < -0.01 for g in gaps), sum(g > 0.01 for g in gaps)
        lower, higher = lower + lo, higher + hi
        logs += [math.log(x[s] / y[s]) for s in seeds if x[s] > 0 and y[s] > 0 and math.isfinite(x[s] * y[s])]
        print(
            f"| {w} | {statistics.median(x[s] for s in seeds):.4g} | {statistics.median(y[s] for s in seeds):.4g} "
            f"| {statistics.median(gaps):+.1%} | {lo} of {len(seeds)} | {hi} of {len(seeds)} |"
        )
    gm = math.exp(sum(logs) / len(logs)) if logs else math.nan
    print(f"\nRuns lower by more than 1%: {lower}; higher: {higher}; geometric mean of the ratios {gm:.3f}")


if __name__ == "__main__":
    main()
