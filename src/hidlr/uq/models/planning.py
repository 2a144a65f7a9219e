"""What a fit will do, decided before any training: the data and options of an estimator's ``fit``
checked, the validation part carved from the training rows, the scaling fitted in float64, and the
standardized data with the resolved options returned as a :class:`~hidlr.uq.models.training.FitPlan`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from hidlr.uq.models import checks
from hidlr.uq.models.scaling import fit_scaling
from hidlr.uq.models.training import FitPlan

#: Monte Carlo passes of a stochastic net's validation NLL during a fit (unless told otherwise).
VALIDATION_SAMPLES = 20
#: Fewest rows on either side of a carved validation split; smaller data train without early stopping.
MIN_SPLIT_ROWS = 5


def plan_fit(
    est: Any,
    X: Any,
    y: Any,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    probe_batch_size: int | None = None,
    validation_samples: int | None = None,
    carve: bool = True,
    default_samples: int | None = None,
) -> FitPlan:
    """Check the data and options of ``est.fit`` (``est``: an :class:`~hidlr.uq.models.estimator.Estimator`),
    carve the validation part, fit the scaling and return the standardized data and resolved
    options. ``est``'s own options must have been checked; ``default_samples``: the validation NLL's
    Monte Carlo passes when ``validation_samples`` is not given (None: a deterministic net). Changes
    nothing on ``est``."""
    Xt, yt, dtype, _ = checks.check_xy(X, y)
    seed = checks.check_seed("random_state", est.random_state) if seed is None else checks.check_seed("seed", seed)
    n_all, d = Xt.shape
    stop_early = bool(est.early_stopping)
    val, fit_rows = None, None
    if validation_data is not None:
        Xv, yv = checks.check_validation_data(validation_data)
        if Xv.shape[1] != d:
            raise ValueError(f"validation_data: X has {Xv.shape[1]} features, training X has {d}")
        val = (Xv.to(Xt.device), yv.to(Xt.device))
    elif stop_early and carve:
        n_val = math.ceil(est.validation_fraction * n_all)
        if min(n_val, n_all - n_val) < MIN_SPLIT_ROWS:
            warnings.warn(
                f"{n_all} training rows are too few to carve a validation part of "
                f"{est.validation_fraction:g}; training without early stopping",
                UserWarning,
                stacklevel=3,
            )
            stop_early = False
        else:
            perm = torch.from_numpy(np.random.default_rng(seed).permutation(n_all)).to(Xt.device)
            fit_rows = perm[n_val:]
            val = (Xt[perm[:n_val]], yt[perm[:n_val]])
    Xf, yf = (Xt, yt) if fit_rows is None else (Xt[fit_rows], yt[fit_rows])
    n = Xf.shape[0]
    batch_size = min(checks.check_int("batch_size", est.batch_size if batch_size is None else batch_size), n)
    lr = checks.check_float("lr", est.lr if lr is None else lr)
    probe_size = (
        min(n, max(batch_size, 256))
        if probe_batch_size is None
        else checks.check_int("probe_batch_size", probe_batch_size)
    )
    if validation_samples is not None:
        checks.check_int("validation_samples", validation_samples)
    epochs = est.epochs if epochs is None else epochs
    if epochs is None:
        epochs = int(min(2000, max(50, math.ceil(est.target_steps / math.ceil(n / batch_size)))))
    epochs = checks.check_int("epochs", epochs)
    patience = est.patience if est.patience is not None else max(10, epochs // 5)
    scaling = fit_scaling(Xf, yf, est.target_scaling)
    xs = ((Xf - scaling["x_shift"]) / scaling["x_scale"]).to(dtype)
    ys = ((yf - scaling["y_shift"]) / scaling["y_scale"]).to(dtype)
    for name, t in (("X", xs), ("y", ys)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{name} cannot be standardized in {dtype}: its values span too wide a range (some standardized "
                f"values overflow); rescale {name}"
            )
    samples = validation_samples if validation_samples is not None else default_samples
    return FitPlan(
        xs,
        ys,
        epochs,
        batch_size,
        probe_size,
        lr,
        val,
        samples,
        scaling=scaling,
        seed=seed,
        patience=patience if stop_early and val is not None else None,
        refit=True if est.refit and fit_rows is not None else None,
        val_rows=None if fit_rows is None else perm[:n_val],
    )
