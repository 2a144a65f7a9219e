"""The demo's uncertainty part: an MDN and a BNN on the bimodal task, whose true conditional density
is known, scored against the truth and prepared for plotting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

TASK = "bimodal"
#: x values at which the demo plots the predictive density against the truth
SLICES = (-0.8, -0.35, 0.2, 0.65)
#: the plotted x range: beyond the training inputs' [-1, 1], where only epistemic variance can tell
X_RANGE = (-1.6, 1.6)


@dataclass
class ModelResult:
    """One fitted model: scores on a test sample and curves for the plots.

    ``scores``: nll, crps, coverage90, width90, calibration_error, kl_to_truth (nats).
    ``grid``: x values (G,); ``mean``, ``lo90``, ``hi90``, ``aleatoric_sd``, ``epistemic_sd``: (G,);
    ``densities``: slice x -> predictive density on ``y_grid`` (Y,); ``reliability``: (expected,
    observed) arrays (L,).
    """

    name: str
    seconds: float
    scores: dict[str, float]
    grid: np.ndarray
    mean: np.ndarray
    lo90: np.ndarray
    hi90: np.ndarray
    aleatoric_sd: np.ndarray
    epistemic_sd: np.ndarray
    densities: dict[float, np.ndarray]
    reliability: tuple[np.ndarray, np.ndarray]
    has_epistemic: bool


@dataclass
class UncertaintyDemo:
    """The task's data and truth, and each model's :class:`ModelResult`."""

    n_train: int
    x_train: np.ndarray
    y_train: np.ndarray
    y_grid: np.ndarray
    true_densities: dict[float, np.ndarray]
    models: list[ModelResult] = field(default_factory=list)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _score(
    name: str, est: Any, seconds: float, task: Any, x_test: torch.Tensor, y_test: torch.Tensor, y_grid: np.ndarray
) -> ModelResult:
    from hidlr.uq import metrics

    dist = est.predict_proba(x_test)
    levels = np.linspace(0.05, 0.95, 19)
    scores = {
        "nll": metrics.nll(dist, y_test),
        "crps": metrics.crps(dist, y_test),
        "coverage90": metrics.coverage(dist, y_test, 0.9),
        "width90": metrics.interval_width(dist, 0.9),
        "calibration_error": metrics.calibration_error(dist, y_test),
        "kl_to_truth": metrics.kl_to_truth(dist, y_test, task.log_prob(x_test, y_test)),
    }
    grid = np.linspace(*X_RANGE, 161)
    g = est.predict_proba(grid.reshape(-1, 1))
    lo, hi = g.interval(0.9)
    has_epi = g.members > 1
    dens = {}
    for x0 in SLICES:
        d = est.predict_proba(np.full((y_grid.size, 1), x0))
        dens[x0] = np.exp(_np(d.log_prob(torch.as_tensor(y_grid, dtype=d.loc.dtype))))
    return ModelResult(
        name,
        seconds,
        {k: float(v) for k, v in scores.items()},
        grid,
        _np(g.mean),
        _np(lo),
        _np(hi),
        np.sqrt(_np(g.aleatoric_variance)),
        np.sqrt(_np(g.epistemic_variance)) if has_epi else np.zeros_like(grid),
        dens,
        metrics.reliability(dist, y_test, levels),
        has_epi,
    )


def run_uncertainty(
    n: int = 1000, epochs: int = 60, seed: int = 0, tick: Callable[[str], None] | None = None
) -> UncertaintyDemo:
    """Fit an MDN (3 components) and a BNN on ``n`` draws of the bimodal task and score both on
    2000 fresh draws against the true density."""
    from hidlr.uq import BNN, MDN
    from hidlr.uq.data import get_task

    if n < 10 or epochs < 1:
        raise ValueError(f"need n >= 10 and epochs >= 1, got n={n}, epochs={epochs}")
    task = get_task(TASK)
    X, y = task.sample(n, seed=seed)
    X_test, y_test = task.sample(2000, seed=seed + 1)
    y_grid = np.linspace(-1.6, 1.6, 241)
    truth = {}
    for x0 in SLICES:
        xs = np.full((y_grid.size, 1), x0)
        truth[x0] = np.exp(np.asarray(task.log_prob(xs, y_grid.reshape(-1, 1)), dtype=np.float64).reshape(-1))
    out = UncertaintyDemo(n, np.asarray(X).reshape(-1), np.asarray(y).reshape(-1), y_grid, truth)
    for name, est in (("MDN", MDN(components=3)), ("BNN", BNN())):
        t0 = time.perf_counter()
        est.fit(X, y, epochs=epochs, seed=seed)
        out.models.append(_score(name, est, time.perf_counter() - t0, task, X_test, y_test, y_grid))
        if tick is not None:
            tick(f"{name} fitted")
    return out
