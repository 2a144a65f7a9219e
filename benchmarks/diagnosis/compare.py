"""Markdown comparison of rule variants at one start rate: median final loss over seeds, the gap to
the stored tuned grid, how many workloads are within 1% of it, and head-to-head wins.

    .venv/bin/python benchmarks/diagnosis/compare.py benchmarks/diagnosis/results/ablate.jsonl \
        benchmarks/diagnosis/results/default_lr0.jsonl --variants diag gen shrink.5-sep --lr0 1e-3 \
        --versus gen
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ablate import tuned_losses
from common import load, median_loss

STORED = Path("benchmarks/results/lr/results.json")
BASELINES = ["default", "prodigy", "dadapt-adam", "sf-adamw", "ldog", "fixed-ratio"]

WORKLOADS = ["digits-lora", "digits-cnn-bn", "digits-mlp-head-sgd", "digits-mlp-bias", "mdn", "bnn", "nam",
             "seq-transformer", "noisy-quadratic", "multitask-heads"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--lr0", type=float, default=1e-3)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--versus", nargs="*", default=[], help="count workloads where each variant beats these")
    a = ap.parse_args()
    recs = [r for f in a.files for r in load(f) if r["seed"] in a.seeds and r.get("lr0") == a.lr0]
    tuned = tuned_losses()
    med = {(w, v): median_loss([r for r in recs if r["workload"] == w and r["method"] == v])
           for w in WORKLOADS for v in a.variants + a.versus}
    n = {(w, v): len([r for r in recs if r["workload"] == w and r["method"] == v])
         for w in WORKLOADS for v in a.variants}
    print(f"Median final validation loss over seeds {a.seeds} at lr0 = {a.lr0:g} (gap to the tuned grid).\n")
    print("| workload | tuned grid | " + " | ".join(a.variants) + " |")
    print("| --- | --- |" + " --- |" * len(a.variants))
    for w in WORKLOADS:
        cells = []
        for v in a.variants:
            m = med[(w, v)]
            cells.append("—" if n[(w, v)] == 0 else f"{m:.4g} ({(m - tuned[w]) / abs(tuned[w]):+.1%})"
                         + ("" if n[(w, v)] == len(a.seeds) else f" [{n[(w, v)]} seeds]"))
        print(f"| {w} | {tuned[w]:.4g} | " + " | ".join(cells) + " |")
    within = [sum(med[(w, v)] <= tuned[w] + 0.01 * abs(tuned[w]) for w in WORKLOADS) for v in a.variants]
    print("| within 1% of tuned | | " + " | ".join(str(x) for x in within) + " |")
    for ref in a.versus:
        wins = [sum(med[(w, v)] < med[(w, ref)] for w in WORKLOADS) for v in a.variants]
        print(f"| better than {ref} | | " + " | ".join(str(x) for x in wins) + " |")
    gaps = [statistics.median((med[(w, v)] - tuned[w]) / abs(tuned[w]) for w in WORKLOADS) for v in a.variants]
    print("| median gap to tuned | | " + " | ".join(f"{g:+.1%}" for g in gaps) + " |")
    if STORED.exists():
        stored = json.loads(STORED.read_text())["summary"]["workloads"]
        ranks = {v: [] for v in a.variants}
        for w in WORKLOADS:
            pool = {b: stored[w]["table"][b]["loss"]["median"] for b in BASELINES
                    if b in stored[w]["table"] and stored[w]["table"][b]["loss"]["median"] is not None}
            for v in a.variants:
                ranks[v].append(1 + sum(x < med[(w, v)] for x in pool.values()))
        print(f"| median rank among {', '.join(BASELINES)} (stored run) and itself | | "
              + " | ".join(f"{statistics.median(ranks[v]):g}" for v in a.variants) + " |")


if __name__ == "__main__":
    main()
