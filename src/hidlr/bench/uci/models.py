"""The model line-up of the UCI protocol: constructors, hyperparameter grids, shared tuning.

Every model has one hidden layer of 50 ReLU units (the published protocol's net), except the wide
MDN ensemble (two hidden layers of 100, ``WIDE``), which is not part of the published comparisons
and competes only for the validation-chosen best model. By default it runs with Hi-DLR only (one
run at one start rate, no rate sweep) and with a longer budget of its own (``MODEL_STEPS``).
Ensembles are tuned through one member (``TUNE_AS``): the deep ensemble through a single Gaussian
net (an MDN with one component), the MDN ensemble through the MDN, so a split tunes each member
type once per optimizer.
"""

from __future__ import annotations

from typing import Any

#: the six models of the published protocol
PROTOCOL_MODELS = ("mdn", "bnn", "mc_dropout", "deep_ensemble", "mdn_ensemble", "bayesian_mdn")
#: every model a run may ask for: the protocol's and the wide MDN ensemble
MODELS = (*PROTOCOL_MODELS, "mdn_ensemble_wide")
OPTIMIZERS = ("hidlr", "adam")
#: optimizer steps at the epoch cap for the models with a budget of their own, unless a run sets
#: ``budget_steps`` for every model (the others: the set's default of :func:`~hidlr.bench.uci.budget.budget_for`)
MODEL_STEPS = {"mdn_ensemble_wide": 3000}
#: the default line-up of each optimizer: the published protocol's six with both; the wide MDN
#: ensemble with Hi-DLR alone (under Adam's four-rate sweep it would take the full protocol past
#: its 30-minute goal)
DEFAULT_MODELS = {"hidlr": (*PROTOCOL_MODELS, "mdn_ensemble_wide"), "adam": PROTOCOL_MODELS}
LABELS = {
    "mdn": "MDN",
    "bnn": "BNN (VI)",
    "mc_dropout": "MC dropout",
    "deep_ensemble": "Deep ensemble (5)",
    "mdn_ensemble": "MDN ensemble (5)",
    "bayesian_mdn": "Bayesian MDN",
    "mdn_ensemble_wide": "MDN ensemble (5), 2x100",
    "gaussian": "Gaussian net",
    "mdn_wide": "MDN, 2x100",
    "laplace": "Last-layer Laplace",
}
MEMBERS = 5
HIDDEN = (50,)
WIDE = (100, 100)

#: model -> the single-member model whose tuned hyperparameters it uses
TUNE_AS = {
    "mdn": "mdn",
    "bnn": "bnn",
    "mc_dropout": "mc_dropout",
    "deep_ensemble": "gaussian",
    "mdn_ensemble": "mdn",
    "bayesian_mdn": "bayesian_mdn",
    "mdn_ensemble_wide": "mdn_wide",
}

#: Adam's grid. Candidates that differ only in rate train side by side (one stacked net), so a
#: wider grid costs little; 3e-2 is in it because 1e-2, the old top, won most tunings of split 0.
ADAM_LRS = (1e-3, 3e-3, 1e-2, 3e-2)
DROPOUT_RATES = (0.01, 0.05)
HIDLR_LR = 3e-3  # Hi-DLR's initial rate (it chooses the rates itself afterwards)


def tuning_grid(model: str, optimizer: str, quick: bool) -> list[dict[str, Any]]:
    """Candidate hyperparameters for a single-member model (epochs are chosen on the curve)."""
    lrs = [HIDLR_LR] if optimizer == "hidlr" else ([3e-3] if quick else list(ADAM_LRS))
    extra: list[dict[str, Any]] = [{}]
    if model == "mc_dropout":
        extra = [{"dropout": 0.05}] if quick else [{"dropout": p} for p in DROPOUT_RATES]
    elif model in ("mdn", "bayesian_mdn", "mdn_wide"):
        extra = [{"components": 3}]
    return [{"lr": lr, **e} for lr in lrs for e in extra]


def build_model(model: str, hp: dict[str, Any], batch_size: int, patience: int | None = None) -> Any:
    """A fresh, unfitted estimator for ``model`` with hyperparameters ``hp``.

    ``patience``: stop early on the validation data given to ``fit`` and keep the best epoch (the
    fits on the fit part); ``None``: train every epoch asked for (the final fits).
    """
    from hidlr.uq import models as M

    common = {"hidden": HIDDEN, "batch_size": batch_size, "early_stopping": patience is not None, "patience": patience}
    # the published protocol's models are single nets: no snapshots of the fit part's epochs
    one = {**common, "snapshots": 1}
    k = int(hp.get("components", 3))
    if model == "gaussian":
        return M.MDN(components=1, **one)
    if model == "mdn":
        return M.MDN(components=k, **one)
    if model == "bnn":
        return M.BNN(**common)
    if model == "mc_dropout":
        return M.MCDropout(dropout=float(hp.get("dropout", 0.05)), **common)
    if model == "deep_ensemble":
        return M.DeepEnsemble(M.MDN(components=1, **one), members=MEMBERS)
    if model == "mdn_ensemble":
        return M.MDNEnsemble(components=k, members=MEMBERS, **one)
    if model == "bayesian_mdn":
        return M.BayesianMDN(components=k, **common)
    wide = {**one, "hidden": WIDE}
    if model == "mdn_wide":
        return M.MDN(components=k, **wide)
    if model == "mdn_ensemble_wide":
        return M.MDNEnsemble(components=k, members=MEMBERS, **wide)
    raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
