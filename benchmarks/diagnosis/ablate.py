"""Hi-DLR rule variants on the benchmark workloads from several start rates and seeds.

    .venv/bin/python benchmarks/diagnosis/ablate.py --variants diag gen --workloads digits-lora mdn \
        --lr0 1e-5 1e-3 1e-1 --seeds 0 1 2 --out benchmarks/diagnosis/results/ablate.jsonl

Start rates are absolute for Adam workloads and scaled by 10 for SGD ones (the benchmark's default
SGD rate is 10x Adam's). Each run is one JSON line; finished runs are reused. ``--table`` prints
medians over seeds per (workload, variant, lr0) and, per workload, the worst start rate's gap.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from common import LOSING, START_RATES, hidlr_method, load, median_loss, run_logged

from hidlr.bench.lr.workloads import get as get_workloads

# name -> (HiDLR options, one group?, probe batch)
VARIANTS: dict[str, tuple[dict, bool, str]] = {
    # engine defaults (shrink 0.5, travel on since this change), probing a separate batch
    "hidlr": ({}, False, "separate"),
    "gen-one-group": ({}, True, "separate"),
    # the rule before this change (shrink off, travel off), and variants of it
    "diag": ({"shrink": None, "travel": False}, False, "same"),
    "gen": ({"shrink": None, "travel": False}, True, "same"),
    "diag-sep": ({"shrink": None, "travel": False}, False, "separate"),
    "gen-sep": ({"shrink": None, "travel": False}, True, "separate"),
    "diag-h0": ({"horizon": 0.0, "shrink": None, "travel": False}, False, "same"),
    "gen-h0": ({"horizon": 0.0, "shrink": None, "travel": False}, True, "same"),
    "diag-ema0": ({"ema": 0.0, "shrink": None, "travel": False}, False, "same"),
    "diag-clip8": ({"clip": (0.125, 8.0), "shrink": None, "travel": False}, False, "same"),
    "gen-clip8": ({"clip": (0.125, 8.0), "shrink": None, "travel": False}, True, "same"),
    "diag-travel": ({"travel": True, "shrink": None}, False, "same"),
    "gen-travel": ({"travel": True, "shrink": None}, True, "same"),
    "diag-travel-h0": ({"travel": True, "horizon": 0.0, "shrink": None}, False, "same"),
    "gen-travel-h0": ({"travel": True, "horizon": 0.0, "shrink": None}, True, "same"),
    "shrink.5-travel-h0": ({"travel": True, "shrink": 0.5, "horizon": 0.0}, False, "same"),
    "shrink.5": ({"shrink": 0.5, "travel": False}, False, "same"),
    "shrink.5-sep": ({"shrink": 0.5, "travel": False}, False, "separate"),
    "shrink.5-sep-travel": ({"shrink": 0.5, "travel": True}, False, "separate"),
    "gen-sep-travel": ({"travel": True, "shrink": None}, True, "separate"),
    "shrink.5-sep-travel-first": ({"shrink": 0.5, "travel": True, "first_clip": (0.01, 100.0)}, False, "separate"),
    "gen-sep-travel-first": ({"travel": True, "first_clip": (0.01, 100.0), "shrink": None}, True, "separate"),
    "shrink0-travel": ({"travel": True, "shrink": 0.0}, False, "same"),
    "shrink.5-travel": ({"travel": True, "shrink": 0.5}, False, "same"),
    "shrink1-travel": ({"travel": True, "shrink": 1.0}, False, "same"),
    # Round 2 (docs/diagnosis.md). The prototype rules below (coupling, held groups following the
    # line, travel by the line, travel margin, cut on ascent) exist only at commit 49da0ec: run
    # these variants there. At later commits travel by the line and first_clip (0.01, 2) are the
    # engine defaults, so "hidlr" is what "tline2-fc-sep" was.
    # shrink exponent from the groups' measured coupling (1 - c), and a stronger fixed shrink
    "couple-sep": ({"shrink": "coupling"}, False, "separate"),
    "shrink.25-sep": ({"shrink": 0.25}, False, "separate"),
    # held groups follow the one-group line; cheaper refreshes of two groups each
    "follow-sep": ({"rules": {"held_follow_line": True}}, False, "separate"),
    "follow-g2-sep": ({"groups_per_refresh": 2, "rules": {"held_follow_line": True}}, False, "separate"),
    "g2-sep": ({"groups_per_refresh": 2}, False, "separate"),
    # a stronger momentum correction (Adam/SGD beta 0.9: x0.18 and x0.1 instead of x0.32)
    "h.75-sep": ({"horizon": 0.75}, False, "separate"),
    "h1-sep": ({"horizon": 1.0}, False, "separate"),
    "gen-h1-sep": ({"horizon": 1.0}, True, "separate"),
    # travel by the one-group line alone (4 forward passes a refresh) while the clip binds
    "tline-sep": ({"travel": True, "rules": {"travel_by_line": True}}, False, "separate"),
    "tline-fc-sep": ({"travel": True, "first_clip": (0.01, 2.0), "rules": {"travel_by_line": True}}, False, "separate"),
    # the same after travel's forwards left the probe credit alone and were capped (TRAVEL_LIMIT)
    "tline2-sep": ({"travel": True, "rules": {"travel_by_line": True}}, False, "separate"),
    "tline2-cut-sep": ({"travel": True, "rules": {"travel_by_line": True, "ascent_cut": 0.5}}, False, "separate"),
    "tline2-m2-sep": ({"travel": True, "rules": {"travel_by_line": True, "travel_margin": 2.0}}, False, "separate"),
    "cut-sep": ({"rules": {"ascent_cut": 0.5}}, False, "separate"),
    "tline2-fc-sep": (
        {"travel": True, "first_clip": (0.01, 2.0), "rules": {"travel_by_line": True}},
        False,
        "separate",
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["diag", "gen"])
    ap.add_argument("--workloads", nargs="+", default=LOSING)
    ap.add_argument("--lr0", nargs="+", type=float, default=list(START_RATES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/diagnosis/results/ablate.jsonl"))
    ap.add_argument("--table", action="store_true", help="print the table only")
    ap.add_argument("--plot", type=Path, default=None, help="also draw final loss against start rate here")
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if not a.table:
        for wl in get_workloads(a.workloads):
            for lr0 in a.lr0:
                factor = lr0 / 1e-3  # relative to Adam's default; SGD workloads' default is 1e-2
                for v in a.variants:
                    opts, one, probe = VARIANTS[v]
                    m = hidlr_method(v, opts, lr0_factor=factor, one_group=one, probe=probe)
                    for s in a.seeds:
                        run_logged(a.out, wl.name, m, s, {"lr0": lr0})
    table(a.out, a.workloads, a.variants, a.lr0, a.seeds)
    if a.plot:
        plot(a.out, a.workloads, a.variants, a.lr0, a.seeds, a.plot)


def plot(out: Path, workloads, variants, lr0s, seeds, path: Path) -> None:
    """Median final loss against start rate, one panel per workload, the tuned grid as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in load(out) if r["seed"] in seeds]
    tuned = tuned_losses()
    cols = 5
    rows = (len(workloads) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, w in zip(axes.flat, workloads):
        for v in variants:
            meds = [
                median_loss([r for r in recs if r["workload"] == w and r["method"] == v and r["lr0"] == lr])
                for lr in lr0s
            ]
            ax.plot(lr0s, meds, marker="o", label=v)
        if w in tuned:
            ax.axhline(tuned[w], color="grey", ls="--", lw=1, label="tuned grid")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(w, fontsize=9)
        ax.set_xlabel("lr0 (Adam scale)", fontsize=8)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def tuned_losses(path: Path = Path("benchmarks/results/lr/results.json")) -> dict[str, float]:
    """The stored tuned grid's median final loss per workload (the best grid point)."""
    if not path.exists():
        return {}
    summary = json.loads(path.read_text())["summary"]["workloads"]
    return {
        w: min(
            v["loss"]["median"]
            for k, v in s["table"].items()
            if k.startswith("grid") and v["loss"]["median"] is not None
        )
        for w, s in summary.items()
    }


def table(out: Path, workloads, variants, lr0s, seeds) -> None:
    """Markdown: per workload and variant, the median final loss over seeds at each start rate, the
    worst start rate's excess over the best, and the default start rate's gap to the tuned grid."""
    recs = load(out)
    tuned = tuned_losses()
    cell = defaultdict(list)
    for r in recs:
        if r["seed"] in seeds:
            cell[(r["workload"], r["method"], r["lr0"])].append(r)
    print(
        "| workload | variant | "
        + " | ".join(f"lr0={lr:g}" for lr in lr0s)
        + " | worst / best - 1 | at 1e-3 vs tuned | runs |"
    )
    print("| --- | --- |" + " --- |" * len(lr0s) + " --- | --- | --- |")
    for w in workloads:
        for v in variants:
            meds = [median_loss(cell[(w, v, lr)]) for lr in lr0s]
            n = sum(len(cell[(w, v, lr)]) for lr in lr0s)
            finite = [m for m in meds if math.isfinite(m)]
            spread = (max(meds) / min(finite) - 1) if finite and min(finite) > 0 else float("nan")
            d = median_loss(cell[(w, v, 1e-3)])
            gap = (d - tuned[w]) / abs(tuned[w]) if w in tuned and math.isfinite(d) else float("nan")
            print(f"| {w} | {v} | " + " | ".join(f"{m:.4g}" for m in meds) + f" | {spread:+.0%} | {gap:+.1%} | {n} |")


if __name__ == "__main__":
    main()
