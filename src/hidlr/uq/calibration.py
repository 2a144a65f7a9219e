"""Calibration with a finite-sample guarantee, on top of any model's predictive distribution.

All three calibrators are fitted on a calibration set the model was not trained on: its predictive
distributions ``dist_cal`` (``n`` rows) and targets ``y_cal: (n,)``. If calibration and test rows
are exchangeable, their intervals cover a new target with probability at least the nominal
``coverage`` (marginally, over the calibration and test draws), and at most ``coverage + 2/(n+1)``.

* :class:`ConformalQuantile` (conformalized quantile regression, Romano et al. 2019): the score of a
  row is how far ``y`` lies outside the model's central interval, ``max(lo - y, y - hi)``; intervals
  widen (or shrink) by the score's conformal quantile, in the units of ``y``.
* :class:`ConformalPIT`: the score is the distance of the PIT from the median, ``|2 F(y) - 1|``; the
  interval is the model's central interval at the level given by the score's conformal quantile
  (a re-chosen nominal level, so intervals keep the model's shape, skew and multimodality).
* :class:`PITRecalibration` (isotonic recalibration of the PIT, Kuleshov et al. 2018, with
  conformal ranks): the map ``R`` from the model's PIT to the empirical distribution of the
  calibration PITs, ``R(p_(k)) = k / (n + 1)``, interpolated linearly. ``R(F(y))`` is a
  recalibrated CDF; :meth:`PITRecalibration.distribution` returns it as a distribution, with
  quantiles and a density. Its intervals take the calibration PITs' order statistics, which is
  what carries the guarantee.

Distributions are :class:`~hidlr.uq.distributions.GaussianMixture` objects (any object with
``cdf`` and ``icdf`` works); levels and scores are computed in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ConformalPIT", "ConformalQuantile", "PITRecalibration", "RecalibratedDistribution", "conformal_rank"]


def conformal_rank(n: int, coverage: float) -> int:
    """``ceil((n + 1) * coverage)``: the rank of the calibration score that bounds a new one with
    probability at least ``coverage``; ``n + 1`` means no finite bound exists (too few rows)."""
    coverage = _check_coverage(coverage)
    return min(n + 1, math.ceil((n + 1) * coverage - 1e-12))


def _check_dist(dist: Any, *methods: str) -> Any:
    """Refuse an argument ``dist`` that lacks the distribution methods a calibrator calls."""
    if not all(callable(getattr(dist, m, None)) for m in methods):
        raise TypeError(
            f"dist must be a predictive distribution with {', '.join(methods)} (e.g. a GaussianMixture), "
            f"got {type(dist).__name__}"
        )
    return dist


def _check_fitted(calibrator: Any) -> None:
    """Refuse to use a calibrator before ``fit`` (scikit-learn's ``NotFittedError``)."""
    if not hasattr(calibrator, "n_"):
        from hidlr.uq.models.interface import _not_fitted_class  # imported late: models import this module

        name = type(calibrator).__name__
        raise _not_fitted_class()(f"this {name} is not fitted yet: call fit(dist_cal, y_cal) first")


def _check_coverage(coverage: Any) -> float:
    """A nominal coverage: a real number (Python, NumPy or a one-element tensor) strictly inside (0, 1)."""
    if isinstance(coverage, (bool, np.bool_)) or not (
        isinstance(coverage, (int, float, np.integer, np.floating))
        or (isinstance(coverage, Tensor) and coverage.numel() == 1)
    ):
        raise TypeError(f"coverage must be a number in (0, 1), got {coverage!r}")
    coverage = float(coverage)
    if not 0.0 < coverage < 1.0:  # also rejects NaN
        raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage!r}")
    return coverage


def _check_cal(dist: Any, y: Any, *methods: str) -> Tensor:
    """The calibration targets ``y: (n,)`` or ``(n, 1)`` as an ``(n,)`` float64 tensor."""
    _check_dist(dist, *methods)
    y = torch.as_tensor(y, dtype=torch.float64)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.dim() != 1:
        raise ValueError(f"calibration targets y_cal must have shape (n,) or (n, 1), got {tuple(y.shape)}")
    n = dist.loc.shape[0] if hasattr(dist, "loc") else len(y)
    if y.shape[0] != n:
        raise ValueError(f"calibration targets have {y.shape[0]} rows, their distributions {n}")
    if n < 1:
        raise ValueError("calibration needs at least one row")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("calibration targets contain NaN or inf")
    return y


def _pit(dist: Any, y: Tensor) -> Tensor:
    """``F(y)`` per row, float64, clipped into ``[0, 1]``."""
    return dist.cdf(y.to(dist.loc.dtype)).double().clamp(0.0, 1.0).cpu()


def _icdf(dist: Any, q: Tensor) -> Tensor:
    """``F^{-1}(q)`` per row for levels ``q: (n,)`` in ``[0, 1]`` (0 and 1 give -inf and +inf)."""
    return dist.icdf(q.to(device=dist.loc.device, dtype=dist.loc.dtype)).double().cpu()


def _kth(scores: Tensor, k: int) -> float:
    """The ``k``-th smallest score (1-based); ``inf`` when ``k`` exceeds their number."""
    return math.inf if k > scores.numel() else float(torch.sort(scores).values[k - 1])


class ConformalQuantile:
    """Conformalized quantile regression on a predictive distribution's central intervals.

    ``fit(dist_cal, y_cal)`` keeps the calibration rows; ``interval(dist, coverage)`` returns
    ``(lo, hi)``, each ``(n,)`` float64: the model's central ``coverage`` interval widened by the
    conformal quantile of the calibration scores at that level.
    """

    def fit(self, dist_cal: Any, y_cal: Any) -> ConformalQuantile:
        self.y_cal_ = _check_cal(dist_cal, y_cal, "interval")
        self.dist_cal_ = dist_cal
        self.n_ = int(self.y_cal_.numel())
        return self

    def margin(self, coverage: float) -> float:
        """The amount (units of y) added on both sides of the central ``coverage`` interval."""
        _check_fitted(self)
        coverage = _check_coverage(coverage)
        lo, hi = (t.double().cpu() for t in self.dist_cal_.interval(coverage))
        scores = torch.maximum(lo - self.y_cal_, self.y_cal_ - hi)
        return _kth(scores, conformal_rank(self.n_, coverage))

    def interval(self, dist: Any, coverage: float) -> tuple[Tensor, Tensor]:
        t = self.margin(coverage)
        lo, hi = (v.double().cpu() for v in _check_dist(dist, "interval").interval(coverage))
        return lo - t, hi + t


class ConformalPIT:
    """Split conformal prediction with the score ``|2 F(y) - 1|`` (distance of the PIT from 1/2).

    ``interval(dist, coverage)`` is the model's central interval at the level ``t``, the conformal
    quantile of the calibration scores (``t = 1``: the whole line).
    """

    def fit(self, dist_cal: Any, y_cal: Any) -> ConformalPIT:
        y = _check_cal(dist_cal, y_cal, "cdf")
        self.scores_ = (2.0 * _pit(dist_cal, y) - 1.0).abs()
        self.n_ = int(y.numel())
        return self

    def level(self, coverage: float) -> float:
        """The nominal central level whose intervals have conformal ``coverage``."""
        _check_fitted(self)
        return min(1.0, _kth(self.scores_, conformal_rank(self.n_, coverage)))

    def interval(self, dist: Any, coverage: float) -> tuple[Tensor, Tensor]:
        t = self.level(coverage)
        n = _check_dist(dist, "icdf").loc.shape[0]
        lo = torch.full((n,), (1.0 - t) / 2.0, dtype=torch.float64)
        return _icdf(dist, lo), _icdf(dist, 1.0 - lo)


class PITRecalibration:
    """Isotonic recalibration of the PIT with conformal ranks.

    The knots are ``(0, 0)``, ``(p_(k), k / (n + 1))`` for the sorted calibration PITs, and
    ``(1, 1)``; ``R`` interpolates them linearly (increasing, so it is its own isotonic fit). So
    that ``R`` is strictly increasing with finite slopes (a finite density), the knots' PITs are
    clamped into ``[eps, 1 - eps]``, ``eps = sqrt(finfo(dtype).eps)`` of the distribution's dtype
    (a PIT that rounds to 0 or 1 says only that ``y`` lies far in a tail), and PITs that tie share
    one knot at their mean rank. The intervals use the PITs' order statistics ``pit_`` as they are.
    """

    def fit(self, dist_cal: Any, y_cal: Any) -> PITRecalibration:
        y = _check_cal(dist_cal, y_cal, "cdf")
        self.pit_ = torch.sort(_pit(dist_cal, y)).values
        self.n_ = int(y.numel())
        n = self.n_
        eps = math.sqrt(torch.finfo(dist_cal.loc.dtype).eps)
        knots, first, ties = np.unique(self.pit_.numpy().clip(eps, 1.0 - eps), return_index=True, return_counts=True)
        self.knots_p_ = np.concatenate([[0.0], knots, [1.0]])
        self.knots_r_ = np.concatenate([[0.0], (first + (ties + 1) / 2.0) / (n + 1), [1.0]])  # mean rank of ties
        return self

    def recalibrate(self, p: Tensor) -> Tensor:
        """``R(p)`` for PIT values ``p`` (any shape, a scalar included)."""
        _check_fitted(self)
        pp = torch.as_tensor(p).double().cpu().numpy()
        return torch.from_numpy(np.asarray(np.interp(pp, self.knots_p_, self.knots_r_)))

    def inverse(self, q: Tensor) -> Tensor:
        """``R^{-1}(q)``: the model's PIT level whose recalibrated level is ``q`` (any shape, a scalar included)."""
        _check_fitted(self)
        qq = torch.as_tensor(q).double().cpu().numpy()
        return torch.from_numpy(np.asarray(np.interp(qq, self.knots_r_, self.knots_p_)))

    def level_bounds(self, coverage: float) -> tuple[float, float]:
        """Model PIT levels ``(p_lo, p_hi)`` of the guaranteed central interval: order statistics
        ``floor((n+1)(1-c)/2)`` and ``ceil((n+1)(1+c)/2)`` of the calibration PITs (0 and 1 beyond)."""
        _check_fitted(self)
        coverage = _check_coverage(coverage)
        n, alpha = self.n_, 1.0 - coverage
        k_lo = math.floor((n + 1) * alpha / 2.0 + 1e-12)
        k_hi = math.ceil((n + 1) * (1.0 - alpha / 2.0) - 1e-12)
        p_lo = 0.0 if k_lo < 1 else float(self.pit_[k_lo - 1])
        p_hi = 1.0 if k_hi > n else float(self.pit_[k_hi - 1])
        return p_lo, p_hi

    def interval(self, dist: Any, coverage: float) -> tuple[Tensor, Tensor]:
        p_lo, p_hi = self.level_bounds(coverage)
        n = _check_dist(dist, "icdf").loc.shape[0]
        return (
            _icdf(dist, torch.full((n,), p_lo, dtype=torch.float64)),
            _icdf(dist, torch.full((n,), p_hi, dtype=torch.float64)),
        )

    def distribution(self, dist: Any) -> RecalibratedDistribution:
        """The recalibrated predictive distribution ``R(F(y))`` of each row of ``dist``."""
        _check_fitted(self)
        return RecalibratedDistribution(_check_dist(dist, "cdf", "icdf", "log_prob"), self)


class RecalibratedDistribution:
    """``G(y) = R(F(y))`` per row, for a base distribution ``F`` and a fitted :class:`PITRecalibration`.

    ``cdf``, ``icdf`` (``F^{-1}(R^{-1}(q))``), ``log_prob`` (``log R'(F(y)) + log f(y)``, with
    ``R'`` the slope of the segment), ``interval(coverage)`` (the guaranteed one) and ``mean``
    (by the quantile function on a midpoint grid). Values: ``(n,)`` tensors, float64.
    """

    def __init__(self, base: Any, calibration: PITRecalibration) -> None:
        self.base = base
        self.calibration = calibration
        self.loc = base.loc  # row count, device and dtype, as the calibrators read them

    def cdf(self, value: Any) -> Tensor:
        v = torch.as_tensor(value, dtype=self.base.loc.dtype, device=self.base.loc.device)
        return self.calibration.recalibrate(self.base.cdf(v))

    def icdf(self, q: Any) -> Tensor:
        q = torch.as_tensor(q, dtype=torch.float64)
        if not bool(((q >= 0) & (q <= 1)).all()):
            raise ValueError("quantile levels must lie in [0, 1]")
        return _icdf(self.base, self.calibration.inverse(q))

    def log_prob(self, value: Any) -> Tensor:
        v = torch.as_tensor(value, dtype=self.base.loc.dtype, device=self.base.loc.device)
        p = self.base.cdf(v).double().cpu().numpy()
        kp, kr = self.calibration.knots_p_, self.calibration.knots_r_
        seg = np.clip(np.searchsorted(kp, p, side="right") - 1, 0, len(kp) - 2)
        slope = (kr[seg + 1] - kr[seg]) / (kp[seg + 1] - kp[seg])  # the knots are distinct: finite
        return torch.from_numpy(np.log(slope)) + self.base.log_prob(v).double().cpu()

    def interval(self, coverage: float) -> tuple[Tensor, Tensor]:
        return self.calibration.interval(self.base, coverage)

    @property
    def mean(self) -> Tensor:
        levels = (torch.arange(200, dtype=torch.float64) + 0.5) / 200
        n = self.base.loc.shape[0]
        return self.icdf(levels[:, None].expand(200, n)).mean(0)
