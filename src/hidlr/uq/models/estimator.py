"""Shared fit/predict machinery for the uncertainty-aware regressors.

Every estimator in :mod:`hidlr.uq.models` wraps an ordinary ``nn.Module`` (its *net*) that works in
standardized units, with ``net.loss(x, y)`` (scalar minibatch loss, ``x: (b, d)``, ``y: (b,)``) and
``net(x) -> GaussianMixture``. After ``fit``, ``estimator.module_`` is a
:class:`~hidlr.uq.models.scaling.ScaledNet`: the net plus the fitted scaling as float64 buffers,
predicting in the user's units on its own.

What a one-line ``fit(X, y)`` does by default: checks the data (:mod:`~hidlr.uq.models.checks`),
carves a validation part (``validation_fraction``) from the training rows, z-scores inputs and
targets in float64 with the statistics of the rows it trains on, trains minibatches reproducibly
from ``random_state`` (Hi-DLR or Adam), scores the validation part after every epoch, stops when it
has not improved for ``patience`` epochs and restores the weights of the best epoch, then fits one
spread factor of the predictive distribution on the same validation rows by likelihood, corrected
for their having chosen the epoch (:mod:`~hidlr.uq.models.spread`; ``variance_scaling``) and, with
``refit=True``, trains again on every row for that many epochs (keeping that factor). A fit that
fails leaves a previously fitted model as it was.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.interface import ProbabilisticRegressor, not_fitted
from hidlr.uq.models.planning import VALIDATION_SAMPLES, plan_fit
from hidlr.uq.models.scaling import SCALINGS, ScaledNet, validation_scores
from hidlr.uq.models.spread import CrossFittedRows, cross_fitted_correction, fit_spread
from hidlr.uq.models.training import (
    EarlyStopping,
    FitPlan,
    fused_adam,
    seeded,
    snapshot_nets,
    train_epochs,
)

OptimizerSpec = None | str | Callable[[list[dict[str, Any]]], torch.optim.Optimizer]

#: Keyword options of :func:`~hidlr.uq.models.planning.plan_fit` that :meth:`Estimator.prepare_fit` passes on.
_PLAN_OPTIONS = frozenset(
    name
    for name, p in inspect.signature(plan_fit).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "default_samples"
)

#: Offset of the prediction seed from the fit seed (predictions draw other numbers than training).
PREDICT_SEED_OFFSET = 104729


#: ``hidlr_options`` of the stochastic nets (BNN, MC dropout, Bayesian MDN): without travel and the
#: first-refresh clip (engine defaults made for start rates far from the fitted one), which lowered
#: their fits on most UCI sets, default and tuned alike; the MDNs keep them, which helped theirs
#: (``benchmarks/results/uci/``, its ``defaults/`` and the README's UCI section).
STOCHASTIC_HIDLR_OPTIONS: dict[str, Any] = {"ema": 0.9, "travel": False, "first_clip": None}


def _takes_lr(factory: Callable[..., Any]) -> bool:
    """True when the optimizer factory has an ``lr`` parameter that it has not fixed itself (a
    ``functools.partial`` with ``lr=...`` keeps its own)."""
    if isinstance(factory, functools.partial) and "lr" in factory.keywords:
        return False
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read: call it with the groups alone
        return False
    return "lr" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Estimator(ProbabilisticRegressor):
    """Base class: subclasses implement :meth:`build` and :meth:`param_groups` and list their own
    constructor parameters (scikit-learn reads them from the signature).

    Args:
        hidden: trunk widths, ``(50,)`` = one hidden layer of 50 units (the UCI protocol).
        activation: trunk nonlinearity, a name or a zero-argument module factory.
        epochs: most epochs; ``None`` picks about ``target_steps`` optimizer steps (50 to 2000 epochs).
        batch_size: minibatch size (capped at the data size).
        lr: (initial) learning rate of the base optimizer.
        optimizer: ``None`` (the class's ``default_optimizer``), ``"hidlr"``, ``"adam"`` or a callable
            ``groups -> torch.optim.Optimizer``. The callable gets the named parameter groups (a list of
            ``{"name": str, "params": [...]}``) and, when it takes an ``lr`` keyword (an optimizer
            class such as ``torch.optim.Adam``, or a ``functools.partial`` of one that does not fix
            ``lr``), also ``lr=`` the learning rate (``lr`` here or in ``fit``); a factory without
            one, e.g. ``lambda groups: torch.optim.SGD(groups, lr=1e-2)``, sets its own.
        early_stopping: carve a validation part, stop when its NLL stops improving, keep the best epoch.
        validation_fraction: share of the training rows carved out for early stopping.
        patience: epochs without improvement before stopping; ``None``: ``max(10, epochs // 5)``.
        refit: after early stopping, train again on all rows for the best number of epochs.
        variance_scaling: after training, fit one factor that widens or narrows the predictive
            distribution about its mean by likelihood on the validation rows (carved, or
            ``validation_data``); the fitted factor is ``spread_`` (1 without validation rows), the
            carved rows' indices ``validation_rows_``. When the same rows chose the epoch (early
            stopping), a deterministic net's factor is corrected to what it is with each row scored
            at the epoch the other rows chose (leave one out): rows look their best at the epoch
            they chose.
        target_scaling: ``"standard"`` (mean, std) or ``"robust"`` (median, IQR / 1.349) for X and y.
        random_state: seed of initialisation, minibatch order, the carved split and Monte Carlo draws
            (``None``: a fresh one per fit).
    """

    target_steps: int = 3000
    #: True when the loss is random given the weights (dropout, weight sampling): probes then use
    #: common random numbers, and predictions average Monte Carlo passes.
    stochastic: bool = False
    #: What ``optimizer=None`` trains with: ``"hidlr"`` (Hi-DLR around Adam) or ``"adam"``.
    default_optimizer: str = "hidlr"
    #: Keyword options of ``HiDLR`` for ``optimizer="hidlr"`` (GeN's smoothing: minibatch probes are
    #: noisy); the stochastic nets take :data:`STOCHASTIC_HIDLR_OPTIONS`.
    hidlr_options: ClassVar[dict[str, Any]] = {"ema": 0.9}
    #: Bound on ``samples * rows * width`` activations held at once by a stochastic prediction.
    predict_chunk: int = 2**24

    def __init__(
        self,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        epochs: int | None = None,
        batch_size: int = 32,
        lr: float = 3e-3,
        optimizer: OptimizerSpec = None,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int | None = None,
        refit: bool = False,
        variance_scaling: bool = True,
        target_scaling: str = "standard",
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.refit = refit
        self.variance_scaling = variance_scaling
        self.target_scaling = target_scaling
        self.random_state = random_state

    # ---- to be provided by subclasses ---------------------------------------------------------
    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> nn.Module:
        """Create the net for ``in_features`` inputs; ``y_std``: standardized training targets (n,)."""
        raise NotImplementedError

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        """Named parameter groups (``{"name": str, "params": [...]}``) of a built net for the optimizer."""
        return [{"name": "all", "params": list(module.parameters())}]

    def _check_model_params(self) -> None:
        """Check the subclass's own constructor parameters (raise ``ValueError``/``TypeError``)."""

    def _snapshots(self) -> int:
        """Epochs whose nets make up the predictive (:class:`~hidlr.uq.models.scaling.ScaledNet`'s
        snapshots); 1 unless a subclass takes the ``snapshots`` option."""
        return 1

    def _early_stopping_keeps(self, plan: FitPlan, one_net: bool = False) -> tuple[int, bool]:
        """For training on ``plan``: how many epochs' weights early stopping keeps (the snapshots;
        1 for a refit, or with ``one_net``), and whether the validation rows are cross-fitted for the
        spread factor. That is done for a single deterministic net only: a stochastic net's factor
        goes without it (see :meth:`fit_spread`), and so does a mixture of snapshots (measured
        without it: ``docs/guide/uncertainty.md``)."""
        keep = 1 if one_net or plan.refit is not None else self._snapshots()
        cross_fit = plan.patience is not None and plan.val is not None and not self.stochastic and keep == 1
        return keep, cross_fit

    def _samples(self) -> int | None:
        """Monte Carlo passes at prediction (stochastic nets), else ``None``."""
        return checks.check_int("samples", self.samples) if self.stochastic else None

    # ---- options ------------------------------------------------------------------------------
    def _check_params(self) -> dict[str, Any]:
        """Every constructor parameter checked (the shared validator); returns the resolved values."""
        checks.check_hidden(self.hidden)
        checks.activation_module(self.activation)
        if self.epochs is not None:
            checks.check_int("epochs", self.epochs)
        checks.check_int("batch_size", self.batch_size)
        checks.check_float("lr", self.lr)
        checks.check_flag("early_stopping", self.early_stopping)
        checks.check_flag("variance_scaling", self.variance_scaling)
        checks.check_flag("refit", self.refit)
        checks.check_float("validation_fraction", self.validation_fraction, high=1.0)
        if self.patience is not None:
            checks.check_int("patience", self.patience)
        if self.target_scaling not in SCALINGS:
            raise ValueError(f"target_scaling must be one of {SCALINGS}, got {self.target_scaling!r}")
        if self.random_state is not None:
            checks.check_int("random_state", self.random_state, minimum=0)
        self._check_model_params()
        if self.stochastic:
            self._samples()
        return {"optimizer": self.optimizer}

    def _make_optimizer(
        self, optimizer: OptimizerSpec, groups: list[dict[str, Any]], lr: float
    ) -> torch.optim.Optimizer:
        groups = [g for g in groups if len(g["params"]) > 0]
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else self.default_optimizer
        if optimizer == "hidlr":
            from hidlr import HiDLR  # the engine, imported when first needed

            return HiDLR(fused_adam(groups, lr), **self.hidlr_options)
        if optimizer == "adam":
            return fused_adam(groups, lr)
        if isinstance(optimizer, str):  # a string, but not a known name: a wrong value
            raise ValueError(f"unknown optimizer {optimizer!r}; use 'hidlr', 'adam' or a callable groups -> optimizer")
        if isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "optimizer: pass a callable that builds the optimizer from param groups (the net is created "
                "inside fit), e.g. optimizer=lambda groups: torch.optim.SGD(groups, lr=1e-2)"
            )
        if not callable(optimizer):
            raise TypeError(f"optimizer must be None, 'hidlr', 'adam' or a callable, got {type(optimizer).__name__}")
        opt = optimizer(groups, lr=lr) if _takes_lr(optimizer) else optimizer(groups)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory returned {type(opt).__name__}, not a torch.optim.Optimizer")
        return opt

    # ---- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        optimizer: OptimizerSpec = None,
        lr: float | None = None,
        seed: int | None = None,
        validation_data: tuple[Any, Any] | None = None,
        progress: bool = False,
        probe_batch_size: int | None = None,
        validation_samples: int | None = None,
    ) -> Estimator:
        """Train on ``X: (n, d)``, ``y: (n,)`` or ``(n, 1)`` (NumPy, pandas or tensors); returns ``self``.

        The keyword arguments override the constructor's options for this fit (``seed`` overrides
        ``random_state``). ``validation_data=(X_val, y_val)``: monitor these rows instead of a carved
        part (with ``early_stopping=False``: only record their NLL per epoch in ``history_``).
        ``validation_samples``: Monte Carlo passes of a stochastic net's validation NLL.
        ``probe_batch_size``: rows of Hi-DLR's probe minibatch (default ``max(batch_size, 256)``).
        Everything runs on the device of ``X`` and in its floating dtype (NumPy input: the default
        dtype on the CPU); the scaling is computed in float64.
        """
        plan = self.prepare_fit(
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            validation_data=validation_data,
            probe_batch_size=probe_batch_size,
            validation_samples=validation_samples,
        )
        module, opt, history, best, cross = self._train_one(plan, optimizer, progress)
        spread = self.fit_spread(module, plan, cross=cross)
        if plan.refit is not None:
            refit = self.prepare_fit(
                X,
                y,
                epochs=max(best, 1),
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                probe_batch_size=probe_batch_size,
                carve=False,
            )
            module, opt, _, _, _ = self._train_one(refit, optimizer, progress)
            module.set_spread(spread)
        self._finish(module, opt, history, plan, best, X, y)
        return self

    def fit_spread(
        self, module: ScaledNet, plan: FitPlan, seed: int | None = None, cross: CrossFittedRows | None = None
    ) -> float:
        """With ``variance_scaling`` and validation rows: fit the spread factor of ``module``'s
        predictions of them (Monte Carlo passes of a stochastic net: its ``samples``, seeded from
        ``seed``, default the plan's), set it on the module and return it; otherwise 1.0. When the
        rows also chose the epoch (``cross``, tracked during early stopping) and the net is
        deterministic, the factor is multiplied by
        :func:`~hidlr.uq.models.spread.cross_fitted_correction`, so that it is the factor of rows
        scored at epochs chosen without them. A stochastic net's validation scores are Monte Carlo
        draws: the correction would also undo their luck, which its full prediction does not share
        (measured: the yacht MC dropout's 90% intervals covered 0.97 with it), so it goes without."""
        if not self.variance_scaling or plan.val is None:
            return 1.0
        Xv, yv = plan.val
        samples = self._samples() if self.stochastic else None
        seed = plan.seed if seed is None else seed
        with torch.no_grad(), seeded(seed + PREDICT_SEED_OFFSET, module.x_shift.device):
            dist = module(Xv, samples=samples)
        factor = fit_spread(dist, yv)
        rows = None if cross is None else cross.rows()
        if rows is not None:
            factor *= cross_fitted_correction(*rows)
        module.set_spread(factor)
        return factor

    def prepare_fit(self, X: Any, y: Any, **options: Any) -> FitPlan:
        """Check the data and options of :meth:`fit`, carve the validation part, fit the scaling and
        return the standardized data and resolved options; ``options`` are those of
        :func:`~hidlr.uq.models.planning.plan_fit` (``epochs``, ``batch_size``, ``lr``, ``seed``,
        ``validation_data``, ``probe_batch_size``, ``validation_samples``, ``carve``). Changes
        nothing on ``self``."""
        unknown = sorted(set(options) - _PLAN_OPTIONS)
        if unknown:
            what = "an unexpected keyword argument" if len(unknown) == 1 else "unexpected keyword arguments"
            raise TypeError(f"{type(self).__name__}.fit() got {what} {', '.join(map(repr, unknown))}")
        self._check_params()
        default_samples = min(self._samples(), VALIDATION_SAMPLES) if self.stochastic else None
        return plan_fit(self, X, y, default_samples=default_samples, **options)

    def new_module(self, plan: FitPlan, seed: int) -> ScaledNet:
        """A freshly initialised net (from ``seed``) inside a :class:`ScaledNet` with the plan's scaling."""
        with seeded(seed, plan.xs.device):
            net = self.build(plan.d, plan.ys, plan.n).to(device=plan.xs.device, dtype=plan.xs.dtype)
        return ScaledNet(net, plan.scaling, chunk=self.predict_chunk).to(plan.xs.device)

    def _train_one(
        self, plan: FitPlan, optimizer: OptimizerSpec, progress: bool
    ) -> tuple[ScaledNet, torch.optim.Optimizer, list[dict[str, float]], int, CrossFittedRows | None]:
        """Train one net on ``plan``; returns the module, optimizer, history, best epoch and, when
        early stopping chose a deterministic net's epoch on validation rows, those rows cross-fitted
        for the spread."""
        module = self.new_module(plan, plan.seed)
        net = module.net
        history: list[dict[str, float]] = []
        keep, cross_fit = self._early_stopping_keeps(plan)
        stopper = EarlyStopping(plan.patience, keep) if plan.patience is not None else None
        cross = CrossFittedRows(plan.val[1]) if cross_fit else None
        with seeded(plan.seed, plan.xs.device):
            opt = self._make_optimizer(optimizer, self.param_groups(net), plan.lr)

            def after_epoch(epoch: int, losses: Tensor) -> str:
                record = {"epoch": epoch + 1, "loss": float(losses)}
                if plan.val is not None:
                    record["val_nll"], dist, log_prob = validation_scores(
                        module, *plan.val, plan.val_samples, plan.seed + PREDICT_SEED_OFFSET
                    )
                    net.train()
                    if stopper is not None:
                        stopper.update(epoch + 1, record["val_nll"], net)
                    if cross is not None:
                        cross.update(dist, log_prob)
                history.append(record)
                return f"loss {record['loss']:.4f}"

            train_epochs(
                net,
                opt,
                plan,
                [plan.seed],
                stochastic=self.stochastic,
                after_epoch=after_epoch,
                progress=progress,
                stop=None if stopper is None else (lambda: stopper.stop),
            )
        if stopper is not None:
            if stopper.state is None:
                warnings.warn(
                    "the validation NLL was never finite; keeping the weights of the last epoch",
                    UserWarning,
                    stacklevel=3,
                )
            stopper.restore(net)
            module.set_snapshots(snapshot_nets(net, stopper.states[1:]))
        module.eval()
        best = stopper.best_epoch if stopper is not None else plan.epochs
        return module, opt, history, best, cross

    def _finish(
        self,
        module: ScaledNet,
        opt: torch.optim.Optimizer,
        history: list[dict[str, float]],
        plan: FitPlan,
        best_epoch: int,
        X: Any,
        y: Any,
    ) -> None:
        """Store the fitted state (only once training has succeeded)."""
        self.module_ = module
        self.optimizer_ = opt
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.spread_ = float(module.spread)
        self.validation_rows_ = None if plan.val_rows is None else plan.val_rows.cpu().numpy()
        self.seed_ = plan.seed
        self.n_features_in_ = plan.d
        checks.keep_feature_names(self, checks.feature_names(X))
        self.target_name_ = getattr(y, "name", None) if not hasattr(y, "columns") else y.columns[0]

    # ---- prediction ---------------------------------------------------------------------------
    def _is_fitted(self) -> bool:
        return hasattr(self, "module_")

    def _check_fitted(self) -> ScaledNet:
        if not self._is_fitted():
            raise not_fitted(self)
        return self.module_

    def predict_proba(self, X: Any, *, samples: int | None = None, seed: int | None = None) -> GaussianMixture:
        """Predictive mixture over ``y`` for each row of ``X: (n, d)``, in the units of y (float64).

        ``samples``: Monte Carlo passes of a stochastic net (default: the ``samples`` option);
        ``seed``: their random numbers (default: derived from the fit seed, so repeated calls agree).
        """
        module = self._check_fitted()
        Xt, _, _ = checks.check_x(X)
        checks.check_feature_names(self, X)
        if Xt.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xt.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        if self.stochastic:
            samples = self._samples() if samples is None else checks.check_int("samples", samples)
        seed = self.seed_ + PREDICT_SEED_OFFSET if seed is None else checks.check_seed("seed", seed)
        with torch.no_grad(), seeded(seed, module.x_shift.device):
            return module(Xt, samples=samples)

    def predict(self, X: Any, *, samples: int | None = None, seed: int | None = None) -> np.ndarray:
        """Point predictions (predictive means) for ``X: (n, d)``: NumPy array ``(n,)`` in y's units."""
        return self.predict_proba(X, samples=samples, seed=seed).mean.cpu().numpy()

    def _nll(self, X: Any, y: Any, samples: int | None = None) -> float:
        """Mean NLL of ``y`` given ``X`` under the fitted model (original units)."""
        return (
            -self.score(X, y)
            if samples is None
            else float(-self.predict_proba(X, samples=samples).log_prob(checks.check_xy(X, y)[1]).mean())
        )
