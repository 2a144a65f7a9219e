"""Deep ensembles (Lakshminarayanan et al. 2017) of any estimator, and an ensemble of MDNs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models.estimator import Estimator
from hidlr.uq.models.mdn import MDN
from hidlr.uq.models.stacked import fit_side_by_side


class DeepEnsemble:
    """``M`` independently initialised and trained copies of an estimator; the prediction is their
    equal-weight mixture (``GaussianMixture.concat``), so its ``epistemic_variance`` is the spread
    of the members' means (for members that are themselves mixtures of samples, e.g. BNNs, the
    members of the result are all their samples).

    Args:
        factory: zero-argument callable returning a fresh, unfitted estimator
            (e.g. ``lambda: MDN(components=3)`` or the class ``BNN``).
        members: ``M``.
        vectorize: train the members side by side as one stacked net
            (:class:`~hidlr.uq.models.stacked.StackedNets`, faster for small nets) instead
            of one after another. Member ``i`` gets the same initial weights and minibatches either
            way, so with Adam (or any per-coordinate optimizer) both give the same members up to
            rounding; random draws inside stochastic losses differ. Under Hi-DLR a stacked
            ensemble shares each group's learning rate across members (one curvature estimate of
            the summed loss per group) where sequential members each get their own.

    ``fit(X, y, seed=s, **kwargs)`` fits member ``i`` with ``seed = s + i`` and the other keyword
    arguments of :meth:`Estimator.fit`; fitted members are ``self.estimators_``.
    """

    def __init__(self, factory: Callable[[], Estimator], members: int = 5, *, vectorize: bool = True) -> None:
        if not callable(factory):
            raise ValueError(f"factory must be a callable returning an estimator, got {type(factory).__name__}")
        if int(members) != members or members < 1:
            raise ValueError(f"members must be a positive integer, got {members!r}")
        self.factory = factory
        self.members = int(members)
        self.vectorize = bool(vectorize)
        self.estimators_: list[Estimator] = []

    def _new_members(self) -> list[Estimator]:
        estimators = [self.factory() for _ in range(self.members)]
        for est in estimators:
            if not isinstance(est, Estimator):
                raise ValueError(f"factory returned {type(est).__name__}, not a hidlr.uq estimator")
        return estimators

    def fit(self, X: Any, y: Any, *, seed: int = 0, progress: bool = False, **kwargs: Any) -> DeepEnsemble:
        """Fit every member on the full data ``X: (n, d)``, ``y: (n,)``; returns ``self``."""
        estimators = self._new_members()
        if self.vectorize and self.members > 1:
            seeds = [seed + i for i in range(self.members)]
            self.estimators_ = fit_side_by_side(estimators, X, y, seeds=seeds, progress=progress, **kwargs)
            return self
        bar = None
        if progress:
            from rich.progress import Progress

            bar = Progress()
            task = bar.add_task("ensemble members", total=self.members)
            bar.start()
        try:
            for i, est in enumerate(estimators):
                est.fit(X, y, seed=seed + i, **kwargs)
                if bar is not None:
                    bar.update(task, advance=1)
        finally:
            if bar is not None:
                bar.stop()
        self.estimators_ = estimators
        return self

    def predict(self, X: Any, **kwargs: Any) -> GaussianMixture:
        """Equal-weight mixture of the members' predictions for ``X: (n, d)`` (original units)."""
        if not self.estimators_:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X, y) before predict")
        return GaussianMixture.concat([est.predict(X, **kwargs) for est in self.estimators_])


class MDNEnsemble(DeepEnsemble):
    """Deep ensemble of ``members`` MDNs with ``components`` each: multimodal aleatoric uncertainty
    from each MDN, epistemic uncertainty from their disagreement. ``vectorize``: see
    :class:`DeepEnsemble`; other keyword arguments go to :class:`MDN`.
    """

    def __init__(self, components: int = 5, members: int = 5, *, vectorize: bool = True, **mdn_kwargs: Any) -> None:
        MDN(components, **mdn_kwargs)  # validate the options now, not at fit time
        self.components = components
        self.mdn_kwargs = mdn_kwargs
        super().__init__(self._make, members, vectorize=vectorize)

    def _make(self) -> MDN:
        return MDN(self.components, **self.mdn_kwargs)

