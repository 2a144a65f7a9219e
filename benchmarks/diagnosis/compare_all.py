"""Markdown comparison of rule variants on every workload found in the run files, at one start rate:
median final loss over seeds, gap to the stored tuned grid, and head-to-head counts.

    .venv/bin/python benchmarks/diagnosis/compare_all.py benchmarks/diagnosis/results/s1*.jsonl \
        --variants couple-sep hidlr gen-one-group --versus gen-one-group
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from ablate import tuned_losses
from common import load, median_loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--lr0", type=float, default=1e-3)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--versus", nargs="*", default=[])
    a = ap.parse_args()
    recs = [r for f in a.files for r in load(f) if r["seed"] in a.seeds and r.get("lr0") == a.lr0]
    tuned = tuned_losses()
    names = a.variants + [v for v in a.versus if v not in a.variants]
    workloads = [w for w in tuned if any(r["workload"] == w for r in recs)]
    cell = {(w, v): [r for r in recs if r["workload"] == w and r["method"] == v] for w in workloads for v in names}
    complete = [w for w in workloads if all(len(cell[(w, v)]) == len(a.seeds) for v in names)]
    med = {k: median_loss(v) for k, v in cell.items()}
    print(f"Median final validation loss over seeds {a.seeds} at lr0 = {a.lr0:g} (gap to the tuned grid).\n")
    print("| workload | tuned grid | " + " | ".join(a.variants) + " |")
    print("| --- | --- |" + " --- |" * len(a.variants))
    for w in workloads:
        cells = []
        for v in a.variants:
            n, m = len(cell[(w, v)]), med[(w, v)]
            cells.append(
                "—"
                if n == 0
                else f"{m:.4g} ({(m - tuned[w]) / abs(tuned[w]):+.1%})" + ("" if n == len(a.seeds) else f" [{n}]")
            )
        print(f"| {w} | {tuned[w]:.4g} | " + " | ".join(cells) + " |")
    print(f"| workloads with every variant complete | {len(complete)} |" + " |" * len(a.variants))
    within = [sum(med[(w, v)] <= tuned[w] + 0.01 * abs(tuned[w]) for w in complete) for v in a.variants]
    print("| within 1% of tuned | | " + " | ".join(str(x) for x in within) + " |")
    for ref in a.versus:
        wins = [sum(med[(w, v)] < med[(w, ref)] for w in complete) for v in a.variants]
        print(f"| better than {ref} | | " + " | ".join(str(x) for x in wins) + " |")
    if complete:
        gaps = [statistics.median((med[(w, v)] - tuned[w]) / abs(tuned[w]) for w in complete) for v in a.variants]
        print("| median gap to tuned | | " + " | ".join(f"{g:+.1%}" for g in gaps) + " |")


if __name__ == "__main__":
    main()
