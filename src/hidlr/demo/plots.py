"""The demo's figures (matplotlib, Agg backend): loss curves, rates over time, predictive densities,
intervals, epistemic against aleatoric spread, calibration. Each function returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hidlr.demo.rates import RunResult
from hidlr.demo.uncertainty import UncertaintyDemo

MODEL_COLORS = {"MDN": "#2d6cdf", "BNN": "#e07b00"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lr_colors(lrs: Sequence[float]) -> dict[float, Any]:
    cmap = _plt().get_cmap("viridis")
    return {lr: cmap(0.1 + 0.75 * i / max(1, len(lrs) - 1)) for i, lr in enumerate(sorted(lrs))}


def _smooth(v: Sequence[float], width: int = 15) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.size < width:
        return a
    return np.convolve(a, np.ones(width) / width, mode="valid")


def loss_curves(runs: Sequence[RunResult]) -> Any:
    """Validation loss (left) and smoothed training loss (right) against step; colour = starting
    rate, solid = Hi-DLR(Adam), dashed = Adam."""
    plt = _plt()
    colors = _lr_colors(sorted({r.lr0 for r in runs}))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for r in runs:
        style = dict(color=colors[r.lr0], ls="-" if r.optimizer != "Adam" else "--", lw=1.8)
        axes[0].plot(r.val_steps, r.val_losses, label=r.name, **style)
        sm = _smooth(r.train_loss)
        axes[1].plot(np.arange(sm.size) + (len(r.train_loss) - sm.size), sm, **style)
    axes[0].set_title("validation loss")
    axes[1].set_title("training loss (moving average of 15 steps)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend(fontsize=8, ncol=1)
    fig.tight_layout()
    return fig


def rates_over_time(runs: Sequence[RunResult]) -> Any:
    """Each group's applied rate against step, one panel per starting rate: Hi-DLR's groups as
    solid lines, the starting rate (= Adam's constant rate) dotted, refresh steps as ticks."""
    plt = _plt()
    hidlr_runs = [r for r in runs if r.optimizer != "Adam"]
    fig, axes = plt.subplots(1, len(hidlr_runs), figsize=(4.2 * len(hidlr_runs), 3.8), sharey=True, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, r in zip(axes[0], hidlr_runs):
        steps = [t for t, _ in r.rates]
        per_group = np.asarray([v for _, v in r.rates])
        for k, name in enumerate(r.group_names):
            ax.plot(steps, per_group[:, k], color=cmap(k), lw=1.8, label=name)
        ax.axhline(r.lr0, color="k", ls=":", lw=1.2, label=f"lr0 = {r.lr0:g} (Adam's rate)")
        for t in r.refresh_steps:
            ax.axvline(t, color="grey", alpha=0.25, lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"Hi-DLR(Adam) from lr0 = {r.lr0:g}")
        ax.set_xlabel("step (grey lines: refreshes)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("learning rate applied")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def densities(u: UncertaintyDemo) -> Any:
    """Predictive density of each model against the true conditional density at a few x."""
    plt = _plt()
    xs = list(u.true_densities)
    fig, axes = plt.subplots(1, len(xs), figsize=(3.2 * len(xs), 3.2), sharey=True)
    for ax, x0 in zip(np.atleast_1d(axes), xs):
        ax.fill_between(u.y_grid, u.true_densities[x0], color="0.85", label="truth")
        for m in u.models:
            ax.plot(u.y_grid, m.densities[x0], color=MODEL_COLORS.get(m.name), lw=1.8, label=m.name)
        ax.set_title(f"p(y | x = {x0:g})")
        ax.set_xlabel("y")
    np.atleast_1d(axes)[0].set_ylabel("density")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def intervals(u: UncertaintyDemo) -> Any:
    """Training data, the two true modes, and each model's predictive mean and central 90% interval."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(u.models), figsize=(5.5 * len(u.models), 3.8), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], u.models):
        ax.scatter(u.x_train, u.y_train, s=4, color="0.55", alpha=0.5, label="training data")
        inside = np.abs(m.grid) <= 1
        for sign in (1, -1):
            ax.plot(
                m.grid[inside],
                sign * np.sin(3 * m.grid[inside]),
                color="k",
                lw=1,
                ls=":",
                label="true modes" if sign == 1 else None,
            )
        c = MODEL_COLORS.get(m.name)
        ax.fill_between(m.grid, m.lo90, m.hi90, color=c, alpha=0.2, label="90% interval")
        ax.plot(m.grid, m.mean, color=c, lw=1.8, label="predictive mean")
        ax.axvspan(-1, 1, color="0.95", zorder=-1)
        ax.set_title(f"{m.name}: 90% interval (shaded: training inputs)")
        ax.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def uncertainty_split(u: UncertaintyDemo) -> Any:
    """Epistemic (spread between sampled networks) against aleatoric (noise within one network)
    standard deviation across x, beyond the training range too."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for m in u.models:
        c = MODEL_COLORS.get(m.name)
        ax.plot(m.grid, m.aleatoric_sd, color=c, lw=1.8, label=f"{m.name} aleatoric sd")
        if m.has_epistemic:
            ax.plot(m.grid, m.epistemic_sd, color=c, lw=1.8, ls="--", label=f"{m.name} epistemic sd")
    ax.axvspan(-1, 1, color="0.95", zorder=-1)
    ax.set_xlabel("x (shaded: training inputs)")
    ax.set_ylabel("standard deviation of y")
    ax.set_title("epistemic against aleatoric uncertainty")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration(u: UncertaintyDemo) -> Any:
    """Reliability: the fraction of test targets below each predicted quantile against the
    quantile level (on the diagonal = calibrated)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="k", ls=":", lw=1, label="calibrated")
    for m in u.models:
        exp, obs = m.reliability
        ax.plot(
            exp,
            obs,
            marker="o",
            ms=3,
            color=MODEL_COLORS.get(m.name),
            lw=1.8,
            label=f"{m.name} (error {m.scores['calibration_error']:.3f})",
        )
    ax.set_xlabel("predicted quantile level")
    ax.set_ylabel("observed fraction below")
    ax.set_title("calibration")
    ax.set_aspect("equal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
