"""The training budget of one UCI set and model (minibatch, epoch cap, early-stopping patience)
and the validation part carved out of a split's training rows for tuning."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hidlr.bench.uci.models import MODEL_STEPS


@dataclass(frozen=True)
class Budget:
    """Training budget for one set: minibatch size, maximum epochs, fraction held out to tune."""

    batch_size: int
    max_epochs: int
    val_frac: float = 0.2


def budget_for(n_train: int, quick: bool, steps: int | None = None) -> Budget:
    """Batch size and epoch cap scaled by the training-set size.

    Small sets get small batches and many epochs, large ones large batches and fewer epochs: about
    ``steps`` optimizer steps at the cap on the fit part (default: 800 for sets under 3000 rows,
    1600 above; each step of these small nets costs about the same whatever the batch), at most
    400 epochs; ``quick`` divides by 20.
    """
    if n_train < 1:
        raise ValueError("budget_for: empty training set")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"budget_for: steps must be a positive int or None, got {steps!r}")
    batch = 32 if n_train < 1200 else (64 if n_train < 3000 else 128)
    if steps is None:
        steps = 800 if n_train < 3000 else 1600
    fit_rows = max(1, int(round(n_train * 0.8)))
    per_epoch = math.ceil(fit_rows / batch)
    epochs = int(min(400, max(10, round(steps / per_epoch))))
    if quick:
        epochs = max(3, epochs // 20)
    return Budget(batch_size=batch, max_epochs=epochs)


def model_budget(model: str, n_train: int, quick: bool, budget_steps: int | None) -> Budget:
    """The training budget of ``model`` on a split of ``n_train`` rows: ``budget_steps`` when a run
    sets it, else the model's own steps in :data:`~hidlr.bench.uci.models.MODEL_STEPS`, else the
    set's default (:func:`budget_for`)."""
    return budget_for(n_train, quick, budget_steps if budget_steps is not None else MODEL_STEPS.get(model))


def carve_validation(
    X: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_idx, val_idx)``: a validation part of ``frac`` of the training rows, the rest to fit.

    Uses the library's :meth:`UCISplit.validation_split`, which shuffles the training indices only,
    so the validation part cannot overlap the test part.
    """
    from hidlr.uq.data.uci import UCISplit

    split = UCISplit.from_indices(X, y, np.asarray(train_idx), np.asarray(test_idx))
    val = split.validation_split(frac, seed=seed)
    return val.train_idx, val.test_idx


def patience_for(budget: Budget) -> int:
    """Early-stopping patience (epochs) of the fits on the fit part: a fifth of the epoch cap, at least 10."""
    return max(10, budget.max_epochs // 5)
