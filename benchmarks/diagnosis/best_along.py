"""Is the gap to the tuned grid a matter of overfitting? (round 11 of ``docs/diagnosis.md``)

Reads the learning-rate store's validation curves (21 evaluations evenly spaced over each run:
every 15-30 steps, every 150 on the 3000-step workloads) and scores every run twice: by its final
validation loss (the benchmark's measure) and by the lowest validation loss along the run (what
early stopping on the same curve would keep). Per workload: the tuned grid under each measure
(the grid point with the lowest median over the seeds, chosen per measure), the gap of Hi-DLR diag
and of the single-run baselines to it, and the counts of the first two goals of issue 9 under each
measure. Nothing is re-run.

    .venv/bin/python benchmarks/diagnosis/best_along.py
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

STORE = Path(__file__).resolve().parents[1] / "results" / "lr" / "results.json"
METHODS = ("hidlr-diag", "gen", "default", "ldog", "sf-adamw")
MEASURES = ("final", "best along")


def load(path: Path = STORE) -> dict[tuple[str, str], dict[int, tuple[float, float]]]:
    """(workload, method) -> seed -> (final validation loss, lowest validation loss on the curve)."""
    runs: dict[tuple[str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    for r in json.loads(path.read_text())["records"]:
        if r["status"] != "ok" or not r.get("curve"):
            continue
        losses = [v for v in r["curve"]["loss"] if v is not None]
        if losses:
            runs[(r["workload"], r["method"])][r["seed"]] = (r["final_loss"], min(losses))
    return runs


def main() -> None:
    runs = load()
    workloads = sorted({w for w, _ in runs})
    counts = {m: defaultdict(int) for m in MEASURES}
    print("| workload | measure | tuned grid | " + " | ".join(METHODS) + " |")
    print("|---|---|---|" + "---|" * len(METHODS))
    for w in workloads:
        grid = [m for (ww, m) in runs if ww == w and m.startswith("grid")]
        for i, measure in enumerate(MEASURES):

            def median(method: str, w: str = w, i: int = i) -> float:
                return statistics.median(v[i] for v in runs[(w, method)].values())

            tuned = min(median(g) for g in grid)
            gaps = {m: (median(m) - tuned) / abs(tuned) for m in METHODS if (w, m) in runs}
            if gaps["hidlr-diag"] <= 0.01:
                counts[measure]["within 1%"] += 1
            if median("hidlr-diag") < median("gen"):
                counts[measure]["below GeN"] += 1
            cells = " | ".join(f"{100 * gaps[m]:+.1f}%" if m in gaps else "—" for m in METHODS)
            print(f"| {w} | {measure} | {tuned:.4g} | {cells} |")
    print()
    for measure in MEASURES:
        c = counts[measure]
        print(
            f"{measure}: Hi-DLR diag within 1% of the tuned grid on {c['within 1%']} of {len(workloads)}, "
            f"below GeN on {c['below GeN']} of {len(workloads)}"
        )


if __name__ == "__main__":
    main()
