"""Round 4 figure: per workload, the median final validation loss of the annealed rule over that of
the same rule without decay, on seeds 0-2 and on the fresh seeds 3-5 (below 1: the anneal ends lower).

    PYTHONPATH=benchmarks/diagnosis .venv/bin/python benchmarks/diagnosis/plot_round4.py \
        benchmarks/diagnosis/runs/round4-*.jsonl --out docs/diagnosis/round4-anneal.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from common import load, median_loss

from hidlr.bench.lr.workloads import get as get_workloads

PAIRS = [("hidlr-wsd", "hidlr", "per-group"), ("gen-wsd", "gen", "one group")]
SEEDS = [((0, 1, 2), "seeds 0-2"), ((3, 4, 5), "seeds 3-5 (fresh)")]


def ratios(recs: list[dict], seeds: tuple[int, ...], variant: str, base: str) -> dict[str, float]:
    out = {}
    for wl in get_workloads():
        a = [r for r in recs if r["workload"] == wl.name and r["method"] == variant and r["seed"] in seeds]
        b = [r for r in recs if r["workload"] == wl.name and r["method"] == base and r["seed"] in seeds]
        if len(a) == len(b) == len(seeds):
            ma, mb = median_loss(a), median_loss(b)
            if ma > 0 and mb > 0:
                out[wl.name] = ma / mb
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    recs = [r for f in a.files for r in load(f) if r.get("lr0") == "default"]
    names = [wl.name for wl in get_workloads()]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharey=True)
    for ax, (variant, base, label) in zip(axes, PAIRS):
        for i, (seeds, seed_label) in enumerate(SEEDS):
            r = ratios(recs, seeds, variant, base)
            y = np.arange(len(names)) + (i - 0.5) * 0.38
            vals = [r.get(n, np.nan) for n in names]
            ax.barh(y, np.log2(vals), height=0.36, label=seed_label, color=f"C{i}")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(np.arange(len(names)), names)
        ax.invert_yaxis()
        ticks = [0.5, 0.71, 1, 1.41, 2]
        ax.set_xticks(np.log2(ticks), [f"{t:g}x" for t in ticks])
        ax.set_xlim(np.log2(0.4), np.log2(2.5))
        ax.set_title(f"{label}: anneal (last 20%) / no decay")
        ax.set_xlabel("median final validation loss, ratio (left of 1x: the anneal ends lower)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
