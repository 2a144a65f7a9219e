"""PNG plots of the learning-rate benchmark: performance profile, loss curves, Hi-DLR's rates."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import Any

from hidlr.bench.lr.scores import performance_profile

TAUS = [2 ** (i / 8) for i in range(41)]  # 1 .. 32
HIGHLIGHT = {
    "hidlr-diag": "C3",
    "hidlr-full": "C1",
    "gen": "C2",
    "gen-optim": "C4",
    "tuned": "k",
    "default": "C0",
    "default-wcos": "C9",
}


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(m: str) -> dict[str, Any]:
    if m in HIGHLIGHT:
        return {"color": HIGHLIGHT[m], "lw": 2.0, "ls": "-" if m != "tuned" else "--"}
    return {"lw": 1.0, "alpha": 0.8}


def profile_plot(results: dict[str, Any], path: Path) -> None:
    plt = _mpl()
    summ = results["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in (
        (axes[0], "profile_costs_steps", "steps to target"),
        (axes[1], "profile_costs_time", "training time to target"),
    ):
        costs = {wl: row for wl, row in summ[key].items() if row}
        if not costs:
            ax.text(0.5, 0.5, "no single-run methods", ha="center", transform=ax.transAxes)
            continue
        prof = performance_profile(costs, TAUS)
        for m, ys in sorted(prof.items()):
            ax.step(TAUS, ys, where="post", label=m, **_style(m))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("τ (cost / best cost on the workload)")
        ax.set_title(f"Performance profile: {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of workloads")
    if axes[1].get_legend_handles_labels()[0]:  # an ablation-only run draws no curves here
        axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _median_curve(runs: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    n = min(len(r["curve"]["step"]) for r in runs)
    steps = runs[0]["curve"]["step"][:n]
    vals = []
    for i in range(n):
        xs = [r["curve"]["loss"][i] for r in runs]
        xs = [x if x is not None and math.isfinite(x) else math.inf for x in xs]
        vals.append(median(xs))
    return steps, vals


def curves_plot(results: dict[str, Any], path: Path) -> None:
    plt = _mpl()
    summ = results["summary"]["workloads"]
    names = list(summ)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, names):
        table = summ[wl]["table"]
        shown = {m: m for m, row in table.items() if row["family"] == "single"}
        if "tuned" in table:
            shown["tuned"] = table["tuned"]["tuned_from"]
        if not shown:  # e.g. a run of ablations only
            shown = {m: m for m in table}
        lo = math.inf
        for label, m in sorted(shown.items()):
            runs = [
                r
                for r in results["records"]
                if r["workload"] == wl and r["method"] == m and r.get("curve") and r["curve"]["step"]
            ]
            if not runs:
                continue
            steps, vals = _median_curve(runs)
            pts = [(s, v) for s, v in zip(steps, vals) if math.isfinite(v)]
            if pts:
                ax.plot(*zip(*pts), label=label, **_style(label))
                lo = min(lo, min(v for _, v in pts))
        if lo > 0 and math.isfinite(lo):
            ax.set_yscale("log")
        first = [r for r in results["records"] if r["workload"] == wl and r.get("curve") and r["curve"]["loss"]]
        if first and first[0]["curve"]["loss"][0] is not None:  # the initial loss bounds the view
            top = first[0]["curve"]["loss"][0]
            if math.isfinite(top) and math.isfinite(lo) and top > lo:
                ax.set_ylim(top=top * 1.05 if top > 0 else top + 0.05 * abs(top))
        ax.axhline(results["workloads"][wl]["target"], color="grey", lw=0.8, ls=":")
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss (median)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def lrs_plot(results: dict[str, Any], path: Path, method: str = "hidlr-diag") -> bool:
    """Per-group learning rate over steps for ``method`` (first seed); False if no such runs."""
    runs = {
        r["workload"]: r
        for r in results["records"]
        if r["method"] == method and r.get("lr_trace") and r["seed"] == results["seeds"][0] and r["lr_trace"]["step"]
    }
    if not runs:
        return False
    plt = _mpl()
    cols = min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, (wl, r) in zip(axes.flat, runs.items()):
        steps, lrs = r["lr_trace"]["step"], r["lr_trace"]["lrs"]
        groups = r.get("groups") or [str(i) for i in range(len(lrs[0]))]
        for k, g in enumerate(groups):
            ys = [row[k] for row in lrs]
            if any(y > 0 for y in ys):
                ax.plot(steps, [y if y > 0 else math.nan for y in ys], label=g, lw=1.2 if len(groups) <= 6 else 0.7)
        ax.set_yscale("log")
        ax.set_title(f"{wl} ({method}, seed {r['seed']})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        if len(groups) <= 6:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(runs) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return True


def start_rate_plot(results: dict[str, Any], path: Path) -> bool:
    """Median final loss against the start rate (Hi-DLR, GeN) beside the grid's loss against its
    fixed rate, one panel per workload; False when no method ran from several start rates."""
    table = results["summary"].get("start_rate") or {}
    if not table:
        return False
    plt = _mpl()
    names = list(table)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, names):
        for m, row in sorted(table[wl].items()):
            pts = [(lr0, v) for lr0, v in sorted((float(k), v) for k, v in row["by_lr0"].items())]
            ax.plot(
                [p[0] for p in pts],
                [p[1] if p[1] is not None and math.isfinite(p[1]) else math.nan for p in pts],
                marker="o",
                label=f"{m} (start rate)",
                **_style(m),
            )
        grid = [
            (row["lr"], row["loss"]["median"])
            for m, row in results["summary"]["workloads"][wl]["table"].items()
            if row["family"] == "grid" and row["lr"] is not None
        ]
        if grid:
            grid.sort()
            ax.plot(
                [g[0] for g in grid],
                [g[1] if math.isfinite(g[1]) else math.nan for g in grid],
                color="k",
                ls="--",
                marker=".",
                label="grid (fixed rate)",
            )
        ax.set_xscale("log")
        ys = [v for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)]
        if ys and min(ys) > 0:
            ax.set_yscale("log")
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("rate (start rate or fixed rate)")
        ax.set_ylabel("final validation loss (median)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return True


def write_plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Write the PNGs into ``out_dir``; the file names written."""
    out_dir = Path(out_dir)
    names = []
    profile_plot(results, out_dir / "performance_profile.png")
    names.append("performance_profile.png")
    curves_plot(results, out_dir / "loss_curves.png")
    names.append("loss_curves.png")
    if lrs_plot(results, out_dir / "hidlr_lrs.png"):
        names.append("hidlr_lrs.png")
    if start_rate_plot(results, out_dir / "start_rates.png"):
        names.append("start_rates.png")
    return names
