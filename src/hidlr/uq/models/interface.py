"""The scikit-learn and skpro surface shared by every probabilistic regressor of :mod:`hidlr.uq`.

A subclass implements ``fit(X, y)`` and ``predict_proba(X) -> GaussianMixture``; this mixin adds
``predict`` (the predictive mean, a NumPy array ``(n,)``), ``predict_interval`` and
``predict_quantiles`` (pandas frames laid out as in skpro), ``score`` (mean log-likelihood),
``get_params``/``set_params`` (so ``sklearn.base.clone``, ``GridSearchCV`` and
``cross_val_score`` work) and ``__sklearn_tags__``. scikit-learn and pandas are imported only by
the methods that need them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from hidlr.uq.distributions import GaussianMixture


class NotFittedError(ValueError, AttributeError):
    """Prediction before ``fit`` (scikit-learn's ``NotFittedError`` when scikit-learn is installed)."""


def not_fitted(estimator: Any) -> Exception:
    """The error raised by a prediction method of an unfitted ``estimator``."""
    message = f"this {type(estimator).__name__} is not fitted yet: call fit(X, y) before predicting"
    return _not_fitted_class()(message)


@functools.cache
def _not_fitted_class() -> type:
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted
    except ImportError:
        return NotFittedError
    return type("NotFittedError", (SklearnNotFitted, NotFittedError), {"__module__": __name__})


def _as_levels(name: str, values: float | Sequence[float]) -> list[float]:
    """``values``: one level or a sequence of them, each strictly inside (0, 1)."""
    if isinstance(values, (np.ndarray, torch.Tensor)):
        values = values.tolist()  # a 0-d array becomes its number
    if isinstance(values, (int, float, np.integer, np.floating)):
        levels = [values]
    elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a number in (0, 1) or a sequence of them, got {values!r}")
    else:
        levels = list(values)
    if not levels:
        raise ValueError(f"{name} needs at least one level")
    out = []
    for v in levels:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not 0.0 < float(v) < 1.0:
            raise ValueError(f"{name} levels must lie strictly between 0 and 1, got {v!r}")
        out.append(float(v))
    return out


def _row_index(X: Any) -> Any:
    """The row index of a pandas input (kept on the output frames), else ``None``."""
    import pandas as pd

    idx = getattr(X, "index", None)
    return idx if isinstance(idx, pd.Index) else None


class ProbabilisticRegressor:
    """Mixin: scikit-learn parameters and the skpro prediction methods on top of ``predict_proba``."""

    #: name of the target in the frames of :meth:`predict_interval` and :meth:`predict_quantiles`
    #: when ``y`` had none (skpro's convention for an unnamed column).
    _default_target_name: Any = 0

    # ---- scikit-learn parameters -------------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must list its parameters explicitly (no *args/**kwargs)")
        return sorted(p.name for p in params if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (and, with ``deep``, those of nested estimators as ``a__b``)."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> ProbabilisticRegressor:
        """Set constructor parameters (``a__b`` reaches into a nested estimator); returns ``self``."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True),
            transformer_tags=None,
            regressor_tags=RegressorTags(),
            classifier_tags=None,
            input_tags=InputTags(two_d_array=True, allow_nan=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def _is_fitted(self) -> bool:
        raise NotImplementedError

    # ---- predictions -------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> GaussianMixture:
        """Predictive distribution over ``y`` for each row of ``X: (n, d)``, in the units of ``y``."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Point predictions (the predictive mean) for ``X: (n, d)``: a NumPy array of shape ``(n,)``."""
        return self.predict_proba(X).mean.detach().cpu().numpy()

    def _target_name(self) -> Any:
        return (
            getattr(self, "target_name_", None)
            if getattr(self, "target_name_", None) is not None
            else self._default_target_name
        )

    def predict_quantiles(self, X: Any, alpha: float | Sequence[float] | None = None) -> Any:
        """Predictive quantiles at levels ``alpha`` (default ``[0.05, 0.95]``), as in skpro: a pandas
        frame with one row per row of ``X`` (its index if ``X`` is a frame) and columns
        ``(target name, alpha)``."""
        import pandas as pd

        levels = _as_levels("alpha", [0.05, 0.95] if alpha is None else alpha)
        dist = self.predict_proba(X)
        n = dist.loc.shape[0]
        q = torch.tensor(levels, dtype=dist.loc.dtype, device=dist.loc.device)[:, None].expand(len(levels), n)
        values = dist.icdf(q).detach().cpu().numpy().T
        cols = pd.MultiIndex.from_product([[self._target_name()], levels])
        return pd.DataFrame(values, index=_row_index(X), columns=cols)

    def predict_interval(self, X: Any, coverage: float | Sequence[float] = 0.9) -> Any:
        """Central prediction intervals of each ``coverage``, as in skpro: a pandas frame with
        columns ``(target name, coverage, "lower" | "upper")``."""
        import pandas as pd

        levels = _as_levels("coverage", coverage)
        bounds = self._interval_bounds(X, levels)  # (n, 2 * len(levels))
        cols = pd.MultiIndex.from_product([[self._target_name()], levels, ["lower", "upper"]])
        return pd.DataFrame(bounds, index=_row_index(X), columns=cols)

    def _interval_bounds(self, X: Any, levels: list[float]) -> np.ndarray:
        """``(n, 2 * len(levels))``: lower and upper bound per level (central quantiles)."""
        dist = self.predict_proba(X)
        out = []
        for c in levels:
            lo, hi = dist.interval(c)
            out += [lo, hi]
        return torch.stack(out, dim=1).detach().cpu().numpy()

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean log predictive density of ``y`` given ``X`` (higher is better; the negative of
        the NLL metric), weighted by ``sample_weight`` if given."""
        from hidlr.uq.models.checks import check_xy

        _, yt, _, _ = check_xy(X, y)
        dist = self.predict_proba(X)
        ll = dist.log_prob(yt.to(dist.loc.device, dist.loc.dtype)).detach().double().cpu().numpy()
        if sample_weight is None:
            return float(ll.mean())
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != ll.shape:
            raise ValueError(f"sample_weight must have shape ({ll.shape[0]},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sample_weight must be finite and >= 0 with a positive sum")
        return float((w * ll).sum() / w.sum())
