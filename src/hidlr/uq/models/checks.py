"""The one place where the estimators check their options and their data.

Option checks raise ``ValueError`` (a wrong value) or ``TypeError`` (a wrong kind of object) naming
the option. :func:`check_xy` is the only validator of ``X`` and ``y``: NumPy arrays, lists, pandas
frames and series, or tensors in; ``X: (n, d)`` and ``y: (n,)`` float64 tensors out (so z-scoring
happens in float64 whatever the working dtype), plus the working dtype and device.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


#: Largest seed: torch's generators take seeds below ``2**64``, and the fits add small offsets.
SEED_MAX = 2**63 - 1


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int ``>= minimum`` (and ``<= maximum``); bools and non-integral numbers are refused."""
    if isinstance(value, (bool, np.bool_)) or (
        not isinstance(value, (int, np.integer)) and not (isinstance(value, float) and value.is_integer())
    ):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return int(value)


def check_float(
    name: str, value: Any, *, low: float = 0.0, high: float = math.inf, low_open: bool = True, high_open: bool = True
) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (open ends by default)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if math.isnan(v) or below or above:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; only True and False (Python or NumPy) are accepted, not 1, "yes" or None."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(name: str, value: Any) -> int:
    """A seed: an int in ``[0, SEED_MAX]``, or ``None`` for a fresh random one (the fit is then not
    reproducible)."""
    if value is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    return check_int(name, value, minimum=0, maximum=SEED_MAX)


def check_posterior_scale(value: Any, prior_sigma: float) -> float | None:
    """``posterior_scale``, the initial posterior std of every Bayesian weight: ``None`` (the layer's
    default) or a number in ``(0, prior_sigma]``. Data can only narrow a Gaussian prior (in a
    linear-Gaussian model the posterior std is at most the prior's), so a posterior that starts wider
    than its prior is refused: its weight draws swamp the net's signal."""
    if value is None:
        return None
    v = check_float("posterior_scale", value)
    if v > prior_sigma:
        raise ValueError(
            f"posterior_scale must lie in (0, prior_sigma] = (0, {prior_sigma:g}]: a posterior starts no wider "
            f"than its prior, got {value!r}"
        )
    return v


def check_hidden(hidden: int | Sequence[int]) -> tuple[int, ...]:
    """Trunk widths: ``50`` or ``(50,)`` or ``(100, 50)`` -> tuple of positive ints."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (int, np.integer, Sequence, np.ndarray)):
        raise TypeError(f"hidden must be a positive integer width or a sequence of them, got {hidden!r}")
    widths = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
    if not all(isinstance(w, (int, float, np.integer, np.floating)) for w in widths):
        raise TypeError(f"hidden must be one or more positive integer widths, got {hidden!r}")
    if not widths or any(isinstance(w, bool) or int(w) != w or w < 1 for w in widths):
        raise ValueError(f"hidden must be one or more positive integer widths, got {hidden!r}")
    return tuple(int(w) for w in widths)


def activation_module(activation: str | Callable[[], nn.Module]) -> nn.Module:
    """A fresh activation module from a name (``"relu"``, ``"tanh"``, ...) or a zero-argument factory."""
    if isinstance(activation, nn.Module):
        cls = type(activation).__name__
        raise TypeError(
            f"activation must be a name or a zero-argument factory, not a module instance ({activation!r}): "
            f"pass the class, e.g. activation={cls} instead of {cls}()"
        )
    if callable(activation) and not isinstance(activation, str):
        module = activation()
        if not isinstance(module, nn.Module):
            raise TypeError(f"activation factory returned {type(module).__name__}, not an nn.Module")
        return module
    try:
        return ACTIVATIONS[str(activation).lower()]()
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)} or pass a factory"
        ) from None


def _as_float64(a: Any, name: str) -> tuple[Tensor, torch.dtype, torch.device | None]:
    """``a`` as a float64 tensor, and the working dtype and device it implies.

    Tensors keep their device, and their dtype when floating; everything else becomes a NumPy
    float64 array first (pandas included) and works in ``torch.get_default_dtype()`` on the CPU.
    """
    if a is None:
        raise ValueError(
            f"{name} is None: this estimator requires y to be passed, but the target y is None"
            if name == "y"
            else f"{name} is None"
        )
    if hasattr(a, "toarray") or hasattr(a, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass a dense array")
    if isinstance(a, Tensor):
        t = a.detach()
        if t.is_complex():
            raise ValueError(f"{name} is complex: Complex data not supported")
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return t.to(torch.float64), dtype, t.device
    arr = np.asarray(a.to_numpy() if hasattr(a, "to_numpy") else a)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} is complex: Complex data not supported")
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as err:  # keep the kind: a dict in an object array is a TypeError
        raise type(err)(f"{name} must be numeric array-like: {err}") from None
    return torch.from_numpy(np.ascontiguousarray(arr)), torch.get_default_dtype(), None


def check_x(X: Any) -> tuple[Tensor, torch.dtype, torch.device | None]:
    """``X: (n, d)`` as float64, with the working dtype and device; clear errors for bad input."""
    Xt, dtype, device = _as_float64(X, "X")
    if Xt.ndim != 2:
        hint = " (Reshape your data with X.reshape(-1, 1) for a single feature)" if Xt.ndim == 1 else ""
        raise ValueError(f"X must be 2-D with shape (n, d), got shape {tuple(Xt.shape)}{hint}")
    if Xt.shape[0] == 0:
        raise ValueError(f"X is empty: 0 sample(s) (shape={tuple(Xt.shape)}) while a minimum of 1 is required.")
    if Xt.shape[1] == 0:
        raise ValueError(f"X has 0 feature(s) (shape={tuple(Xt.shape)}) while a minimum of 1 is required.")
    bad = ~torch.isfinite(Xt)
    if bad.any():
        first = int(bad.any(1).nonzero()[0])
        raise ValueError(f"X contains {int(bad.sum())} NaN or inf value(s) (first at row {first})")
    return Xt, dtype, device


def check_xy(X: Any, y: Any) -> tuple[Tensor, Tensor, torch.dtype, torch.device | None]:
    """``X: (n, d)`` and ``y: (n,)`` (``y`` may be a column ``(n, 1)``) as float64 tensors on the
    device of ``X``, with the working dtype and device."""
    Xt, dtype, device = check_x(X)
    yt, _, _ = _as_float64(y, "y")
    yt = yt.to(Xt.device)
    if yt.ndim == 2 and yt.shape[1] == 1:
        if not hasattr(y, "columns"):  # a pandas frame with one column is how skpro passes y
            _column_warning()
        yt = yt[:, 0]
    if yt.ndim != 1:
        raise ValueError(f"y must have shape (n,) or (n, 1), got shape {tuple(yt.shape)}")
    if yt.shape[0] != Xt.shape[0]:
        raise ValueError(f"X and y have different lengths: X has {Xt.shape[0]} rows, y has {yt.shape[0]}")
    bad = ~torch.isfinite(yt)
    if bad.any():
        raise ValueError(f"y contains {int(bad.sum())} NaN or inf value(s) (first at row {int(bad.nonzero()[0])})")
    return Xt, yt, dtype, device


def check_validation_data(validation_data: Any) -> tuple[Tensor, Tensor]:
    """``validation_data=(X_val, y_val)`` checked like ``X`` and ``y``; errors name ``validation_data``."""
    if (
        isinstance(validation_data, (str, bytes))
        or not isinstance(validation_data, Sequence)
        or len(validation_data) != 2
    ):
        raise TypeError(f"validation_data must be a pair (X_val, y_val), got {type(validation_data).__name__}")
    try:
        Xv, yv, _, _ = check_xy(*validation_data)
    except (TypeError, ValueError) as err:
        raise type(err)(f"validation_data: {err}") from None
    return Xv, yv


def _column_warning() -> None:
    """scikit-learn's warning for a column-vector ``y`` (its ``DataConversionWarning`` if installed)."""
    try:
        from sklearn.exceptions import DataConversionWarning as category
    except ImportError:
        category = UserWarning
    warnings.warn(
        "A column-vector y was passed when a 1d array was expected; it is read as shape (n,)", category, stacklevel=4
    )


def feature_names(X: Any) -> np.ndarray | None:
    """Column names of a pandas frame whose names are all strings, else ``None`` (scikit-learn's rule)."""
    cols = getattr(X, "columns", None)
    if cols is None:
        return None
    names = np.asarray(cols, dtype=object)
    return names if all(isinstance(c, str) for c in names) else None


def keep_feature_names(estimator: Any, names: np.ndarray | None) -> None:
    """Set ``estimator.feature_names_in_`` to ``names`` after a fit, or remove an earlier fit's when
    this one had none (scikit-learn's convention)."""
    if names is not None:
        estimator.feature_names_in_ = names
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


def check_feature_names(estimator: Any, X: Any) -> None:
    """scikit-learn's rule for ``X`` at prediction time: a frame's column names must be the ones
    seen in ``fit``, in the same order (``ValueError`` naming the unseen and missing ones); names on
    one side only get a warning, as in scikit-learn."""
    fitted = getattr(estimator, "feature_names_in_", None)
    given = feature_names(X)
    name = type(estimator).__name__
    if fitted is None and given is None:
        return
    if given is None:
        warnings.warn(f"X does not have valid feature names, but {name} was fitted with feature names", stacklevel=3)
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {name} was fitted without feature names", stacklevel=3)
        return
    if len(given) == len(fitted) and bool((given == fitted).all()):
        return
    unseen = [str(c) for c in given if c not in set(fitted)]
    missing = [str(c) for c in fitted if c not in set(given)]
    detail = (
        "".join(
            f"{what}: {', '.join(cols[:5])}{' ...' if len(cols) > 5 else ''}. "
            for what, cols in (("unseen at fit time", unseen), ("seen at fit time, missing now", missing))
            if cols
        )
        or "the columns are in another order than in fit (reorder them, e.g. X[model.feature_names_in_])."
    )
    raise ValueError(f"the feature names of X must match those passed to {name}.fit: {detail}")
