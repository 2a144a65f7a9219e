"""A regressor wrapper that calibrates any estimator of :mod:`hidlr.uq.models` on held-out rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hidlr.uq.calibration import (
    ConformalPIT,
    ConformalQuantile,
    PITRecalibration,
    RecalibratedDistribution,
)
from hidlr.uq.models import checks
from hidlr.uq.models.interface import ProbabilisticRegressor, not_fitted

METHODS = {"pit": ConformalPIT, "cqr": ConformalQuantile, "recalibrate": PITRecalibration}


def _rows(a: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of a pandas object, a tensor (on its device) or anything NumPy reads."""
    if hasattr(a, "iloc"):
        return a.iloc[rows]
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(rows, device=a.device)]
    return np.asarray(a)[rows]


class ConformalRegressor(ProbabilisticRegressor):
    """Fit ``estimator`` on part of the training rows, calibrate it on the rest.

    Args:
        estimator: an unfitted estimator (its parameters are copied; the original is left alone).
        method: how ``predict_interval`` builds intervals: ``"pit"`` (:class:`~hidlr.uq.calibration.ConformalPIT`),
            ``"cqr"`` (:class:`~hidlr.uq.calibration.ConformalQuantile`) or ``"recalibrate"``
            (:class:`~hidlr.uq.calibration.PITRecalibration`'s order statistics). Each covers a new
            exchangeable row with probability at least the nominal coverage.
        calibration_fraction: share of the training rows held out for calibration.
        random_state: seed of the split (and of the estimator's fit).

    ``predict_proba`` returns the PIT-recalibrated distribution (a
    :class:`~hidlr.uq.calibration.RecalibratedDistribution`: ``cdf``, ``icdf``, ``log_prob``, ``interval``,
    ``mean``), so ``predict_quantiles`` and ``score`` are recalibrated too; ``predict`` returns the
    fitted estimator's predictive means. Fitted: ``estimator_``, ``calibrator_``, ``recalibration_``.
    """

    def __init__(
        self, estimator: Any, method: str = "pit", *, calibration_fraction: float = 0.2, random_state: int = 0
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any, **fit_kwargs: Any) -> ConformalRegressor:
        """Split the rows, fit a copy of ``estimator`` on one part, calibrate on the other; ``self``."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        frac = checks.check_float("calibration_fraction", self.calibration_fraction, high=1.0)
        seed = checks.check_seed("random_state", self.random_state)
        Xt, yt, _, _ = checks.check_xy(X, y)
        n = Xt.shape[0]
        n_cal = round(frac * n)
        if n_cal < 1 or n - n_cal < 2:
            raise ValueError(
                f"X has {n} sample(s) (rows), too few to split into a training part and {frac:g} for calibration"
            )
        perm = np.random.default_rng(seed).permutation(n)
        fit_rows, cal_rows = perm[n_cal:], perm[:n_cal]
        base = self.estimator
        if not isinstance(base, ProbabilisticRegressor):
            raise TypeError(
                f"estimator must be a hidlr.uq estimator (an unfitted template, e.g. MDN()), got {type(base).__name__}"
            )
        est = type(base)(**base.get_params(deep=False))
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=seed)
        est.fit(_rows(X, fit_rows), _rows(y, fit_rows), **fit_kwargs)
        dist_cal = est.predict_proba(_rows(X, cal_rows))
        y_cal = yt[torch.as_tensor(cal_rows)].cpu()
        self.calibrator_ = METHODS[self.method]().fit(dist_cal, y_cal)
        self.recalibration_ = (
            self.calibrator_ if self.method == "recalibrate" else PITRecalibration().fit(dist_cal, y_cal)
        )
        self.estimator_ = est
        self.n_features_in_ = est.n_features_in_
        checks.keep_feature_names(self, getattr(est, "feature_names_in_", None))
        self.target_name_ = getattr(est, "target_name_", None)
        self.n_calibration_ = n_cal
        return self

    def _is_fitted(self) -> bool:
        return hasattr(self, "estimator_")

    def predict_proba(self, X: Any) -> RecalibratedDistribution:
        """The PIT-recalibrated predictive distribution of each row of ``X: (n, d)``."""
        if not self._is_fitted():
            raise not_fitted(self)
        return self.recalibration_.distribution(self.estimator_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The fitted estimator's predictive means for ``X: (n, d)``: NumPy ``(n,)``."""
        if not self._is_fitted():
            raise not_fitted(self)
        return self.estimator_.predict(X)

    def _interval_bounds(self, X: Any, levels: list[float]) -> np.ndarray:
        if not self._is_fitted():
            raise not_fitted(self)
        dist = self.estimator_.predict_proba(X)
        out = []
        for c in levels:
            lo, hi = self.calibrator_.interval(dist, c)
            out += [lo, hi]
        return torch.stack(out, dim=1).numpy()
