"""Glue between the KL study and :mod:`hidlr.uq`: tasks, samples, model line-up, density slices.

Models for the synthetic study have one hidden layer of 50 units like the UCI ones; the BNN and
MC dropout get an input-dependent noise head (``heteroscedastic=True``), since every task here has
input-dependent noise and a homoscedastic model would lose by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("bimodal", "heteroscedastic", "bishop")
GAP_TASK = "gap"
GAP_N = 40
EVAL_SEED = 987_654
COMPONENTS = 5


def coverage_levels() -> tuple[float, ...]:
    """Central-interval levels whose coverage is reported."""
    return (0.5, 0.9, 0.95)


def make_task(name: str) -> Any:
    """The synthetic task called ``name`` from :mod:`hidlr.uq.data` (clear error if unknown)."""
    from hidlr.uq import data

    return data.get_task(name)


def _xy(task: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = task.sample(n, seed=seed)
    X = np.asarray(X, dtype=np.float64).reshape(n, -1)
    return X, np.asarray(y, dtype=np.float64).reshape(n)


def train_sample(task: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training sample ``X: (n, d)``, ``y: (n,)`` for seed ``seed``."""
    return _xy(task, n, seed)


def eval_sample(task: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed evaluation sample (same seed for every model, size and training seed)."""
    return _xy(task, n, EVAL_SEED)


def build(model: str, batch_size: int) -> Any:
    """A fresh estimator of the KL line-up (one hidden layer of 50 units)."""
    from hidlr.uq import models as M

    # the study fixes its own epochs (tuned on a validation part): no early stopping inside fit
    common = {"hidden": (50,), "batch_size": batch_size, "early_stopping": False}
    if model == "mdn":
        return M.MDN(components=COMPONENTS, **common)
    if model == "bnn":
        return M.BNN(heteroscedastic=True, **common)
    if model == "bnn_homoscedastic":  # the NUTS reference's model: one noise scale for all inputs
        return M.BNN(heteroscedastic=False, **common)
    if model == "mc_dropout":
        return M.MCDropout(heteroscedastic=True, **common)
    if model == "deep_ensemble":
        return M.DeepEnsemble(lambda: M.MDN(components=1, **common), members=5)
    if model == "mdn_ensemble":
        return M.MDNEnsemble(components=COMPONENTS, members=5, **common)
    if model == "laplace":
        return M.LastLayerLaplace(**common)
    if model == "bayesian_mdn":
        return M.BayesianMDN(components=COMPONENTS, **common)
    raise ValueError(f"unknown model {model!r}")


def density_grid(task: Any, est: Any, points: int = 200) -> dict[str, Any]:
    """True and predicted densities p(y|x) on a y grid at three inputs (10%, 50%, 85% quantiles of x)."""
    X, y = _xy(task, 4000, EVAL_SEED + 1)
    xs = np.quantile(X[:, 0], [0.1, 0.5, 0.85])
    lo, hi = np.quantile(y, [0.002, 0.998])
    pad = 0.1 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, points)
    true, model = [], []
    for x in xs:
        xr = np.full((points, X.shape[1]), x)
        true.append(np.exp(np.asarray(task.log_prob(xr, grid), dtype=np.float64)).tolist())
        lp = est.predict_proba(xr).log_prob(grid).detach().double().cpu().numpy()
        model.append(np.exp(lp).tolist())
    return {"x": xs.tolist(), "y": grid.tolist(), "true": true, "model": model}


def gap_regions(X: np.ndarray, points: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An input grid around 1-D training inputs, and masks for 'inside the gap' and 'near the data'.

    The gap is the widest interval between consecutive training inputs; 'inside' is its middle
    half, 'near' is within 2% of the input span of some training input.
    """
    x = np.sort(np.asarray(X, dtype=np.float64).reshape(-1))
    if x.size < 3:
        raise ValueError("gap_regions: need at least 3 training inputs")
    span = x[-1] - x[0]
    grid = np.linspace(x[0] - 0.1 * span, x[-1] + 0.1 * span, points)
    i = int(np.argmax(np.diff(x)))
    a, b = x[i], x[i + 1]
    in_gap = (grid > a + 0.25 * (b - a)) & (grid < b - 0.25 * (b - a))
    near = np.min(np.abs(grid[:, None] - x[None, :]), axis=1) <= 0.02 * span
    return grid, in_gap, near
