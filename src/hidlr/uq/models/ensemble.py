"""Deep ensembles (Lakshminarayanan et al. 2017) of any estimator, and an ensemble of MDNs."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.estimator import Estimator, OptimizerSpec
from hidlr.uq.models.interface import ProbabilisticRegressor, not_fitted
from hidlr.uq.models.mdn import MDN, SNAPSHOTS
from hidlr.uq.models.spread import cross_fitted_correction, dilate, fit_spread
from hidlr.uq.models.stacked import fit_side_by_side


class DeepEnsemble(ProbabilisticRegressor):
    """``M`` independently initialised and trained copies of an estimator; the prediction is their
    equal-weight mixture (``GaussianMixture.concat``), so its ``epistemic_variance`` is the spread
    of the members' means (for members that are themselves mixtures of samples, e.g. BNNs, the
    members of the result are all their samples).

    Args:
        estimator: an unfitted estimator to copy (its parameters are copied into every member), or
            a zero-argument callable returning a fresh one (e.g. ``lambda: MDN(components=3)``).
        members: ``M``.
        vectorize: train the members side by side as one stacked net
            (:class:`~hidlr.uq.models.stacked.StackedNets`, several times faster for small nets)
            instead of one after another. Member ``i`` gets the same initial weights and minibatches
            either way, so with Adam (or any per-coordinate optimizer) both give the same members up
            to rounding; random draws inside stochastic losses differ. Under Hi-DLR a stacked
            ensemble shares each group's learning rate across members. Side by side, the members
            share one carved validation part (the first member's).
        random_state: member ``i`` is fitted with seed ``random_state + i``.
        variance_scaling: fit one spread factor for the whole mixture on the members' shared
            validation rows (see below), as :class:`MDNEnsemble` does. Without it the members'
            disagreement widens intervals that each member has already scaled to its own
            validation rows (too wide on the small UCI sets in the default-fit benchmark,
            ``benchmarks/results/uci/defaults20/``).

    ``fit(X, y, seed=s, **kwargs)`` overrides ``random_state`` and passes the other keyword
    arguments to :meth:`Estimator.fit`; fitted members are ``self.estimators_``.

    Variance scaling: each member's spread is fitted on its validation rows when the member's own
    ``variance_scaling`` is on; with the ensemble's ``variance_scaling``, a side-by-side ensemble
    that is not refitted then fits one more factor ``spread_`` for the whole mixture on the
    members' shared validation rows (the members' disagreement is part of the predictive spread);
    otherwise ``spread_`` is 1. When early stopping chose deterministic members' epochs on those
    rows, both kinds of factor are corrected to what they are with each row scored at an epoch
    chosen without it (:class:`~hidlr.uq.models.spread.CrossFittedRows`).
    """

    def __init__(
        self,
        estimator: Estimator | Callable[[], Estimator],
        members: int = 5,
        *,
        vectorize: bool = True,
        random_state: int = 0,
        variance_scaling: bool = True,
    ) -> None:
        self.estimator = estimator
        self.members = members
        self.vectorize = vectorize
        self.random_state = random_state
        self.variance_scaling = variance_scaling

    def _new_members(self) -> list[Estimator]:
        m = checks.check_int("members", self.members)
        base = self.estimator
        if isinstance(base, Estimator):
            params = base.get_params(deep=False)
            estimators = [type(base)(**params) for _ in range(m)]
        elif callable(base):
            estimators = [base() for _ in range(m)]
        else:
            raise TypeError(f"estimator must be an estimator or a callable returning one, got {type(base).__name__}")
        for est in estimators:
            if not isinstance(est, Estimator):
                raise TypeError(f"estimator factory returned {type(est).__name__}, not a hidlr.uq estimator")
        return estimators

    def fit(self, X: Any, y: Any, *, seed: int | None = None, progress: bool = False, **kwargs: Any) -> DeepEnsemble:
        """Fit every member on ``X: (n, d)``, ``y: (n,)``; returns ``self`` (unchanged if a fit fails)."""
        checks.check_flag("variance_scaling", self.variance_scaling)
        checks.check_flag("vectorize", self.vectorize)
        estimators = self._new_members()
        seed = checks.check_seed("random_state", self.random_state) if seed is None else checks.check_seed("seed", seed)
        seeds = [seed + i for i in range(len(estimators))]
        cross_fitted: list[tuple[GaussianMixture, GaussianMixture, torch.Tensor]] = []
        if self.vectorize and len(estimators) > 1:
            fit_side_by_side(estimators, X, y, seeds=seeds, progress=progress, cross_fitted=cross_fitted, **kwargs)
        else:
            bar = None
            if progress:
                from rich.progress import Progress

                bar = Progress()
                task = bar.add_task("ensemble members", total=len(estimators))
                bar.start()
            try:
                for est, s in zip(estimators, seeds):
                    est.fit(X, y, seed=s, **kwargs)
                    if bar is not None:
                        bar.update(task, advance=1)
            finally:
                if bar is not None:
                    bar.stop()
        self.spread_ = self._ensemble_spread(estimators, X, y, kwargs, cross_fitted)
        self.estimators_ = estimators
        self.n_features_in_ = estimators[0].n_features_in_
        self.target_name_ = estimators[0].target_name_
        checks.keep_feature_names(self, getattr(estimators[0], "feature_names_in_", None))
        return self

    def _ensemble_spread(
        self,
        estimators: list[Estimator],
        X: Any,
        y: Any,
        options: dict[str, Any],
        cross_fitted: list[tuple[GaussianMixture, GaussianMixture, torch.Tensor]],
    ) -> float:
        """The whole mixture's spread factor on the shared validation rows (see the class docstring),
        corrected by the members' cross-fitted rows when early stopping chose their epochs on them."""
        lead = estimators[0]
        if not (self.variance_scaling and self.vectorize and len(estimators) > 1):
            return 1.0
        if "validation_data" in options and options["validation_data"] is not None:
            Xv, yv = options["validation_data"]
        elif lead.validation_rows_ is not None and not lead.refit:
            Xt, yt, _, _ = checks.check_xy(X, y)
            rows = torch.as_tensor(lead.validation_rows_, device=Xt.device)
            # a frame stays a frame, so that the members see the column names they were fitted with
            Xv = X.iloc[lead.validation_rows_] if hasattr(X, "iloc") else Xt[rows]
            yv = yt[rows]
        else:
            return 1.0
        _, yv, _, _ = checks.check_xy(Xv, yv)
        dist = GaussianMixture.concat([est.predict_proba(Xv) for est in estimators])
        factor = fit_spread(dist, yv)
        if cross_fitted and not lead.refit:  # the members' epochs were chosen on these rows
            left_out, chosen = (GaussianMixture.concat([rows[i] for rows in cross_fitted]) for i in (0, 1))
            factor *= cross_fitted_correction(left_out, chosen, cross_fitted[0][2])
        return factor

    def _is_fitted(self) -> bool:
        return hasattr(self, "estimators_")

    def predict_proba(self, X: Any, **kwargs: Any) -> GaussianMixture:
        """Equal-weight mixture of the members' predictions for ``X: (n, d)`` (original units),
        scaled about its mean by ``spread_``."""
        if not self._is_fitted():
            raise not_fitted(self)
        checks.check_feature_names(self, X)  # named after the ensemble; the members' own check is then quiet
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X (does not have valid|has) feature names")
            dist = GaussianMixture.concat([est.predict_proba(X, **kwargs) for est in self.estimators_])
        spread = getattr(self, "spread_", 1.0)
        return dist if spread == 1.0 else dilate(dist, spread)

    def predict(self, X: Any, **kwargs: Any) -> Any:
        """Predictive means for ``X: (n, d)``: a NumPy array ``(n,)``."""
        return self.predict_proba(X, **kwargs).mean.cpu().numpy()


class MDNEnsemble(DeepEnsemble):
    """Deep ensemble of ``members`` MDNs with ``components`` each: multimodal aleatoric uncertainty
    from each MDN, epistemic uncertainty from their disagreement. ``vectorize``, ``random_state``:
    see :class:`DeepEnsemble`; ``variance_scaling`` (on by default) scales the members and the
    whole mixture; the other parameters are the members' (see :class:`MDN`).
    """

    def __init__(
        self,
        components: int = 5,
        members: int = 5,
        *,
        vectorize: bool = True,
        random_state: int = 0,
        scale_floor: float = 1e-3,
        collapse_penalty: float = 1e-2,
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
        snapshots: int = SNAPSHOTS,
    ) -> None:
        self.components = components
        self.snapshots = snapshots
        self.scale_floor = scale_floor
        self.collapse_penalty = collapse_penalty
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
        self.members = members
        self.vectorize = vectorize
        self.random_state = random_state

    @property
    def estimator(self) -> MDN:
        """The member template, built from this ensemble's parameters."""
        names = set(MDN._get_param_names()) - {"random_state"}
        return MDN(**{k: getattr(self, k) for k in names})
