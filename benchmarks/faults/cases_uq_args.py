"""Arguments of the ``hidlr.uq`` estimators' methods: ``fit`` overrides (epochs, batch_size, lr, seed,
validation_data, ...), ``predict_interval(coverage=)``, ``predict_quantiles(alpha=)``,
``predict(samples=)``, ``score(sample_weight=)``; each wrong value must be refused naming the
argument, with the fitted model unchanged. Valid kinds of data (int arrays, float32 tensors,
pandas frames, a column ``y``) are controls that must fit."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from cases_uq import ESTIMATORS, data
from harness import Case, Outcome, refused, short

NAN, INF = math.nan, math.inf

_COUNT_BAD = [("zero", 0), ("negative", -1), ("float", 2.5), ("str", "3"), ("bool", True), ("nan", NAN)]
_LEVEL_BAD = [("zero", 0.0), ("one", 1.0), ("above-1", 1.5), ("negative", -0.1), ("nan", NAN), ("str", "0.9")]

FIT_ARGS: dict[str, list[tuple[str, Any]]] = {
    "epochs": _COUNT_BAD,
    "batch_size": _COUNT_BAD,
    "probe_batch_size": _COUNT_BAD,
    "validation_samples": _COUNT_BAD,
    "lr": [("zero", 0.0), ("negative", -1e-3), ("nan", NAN), ("inf", INF), ("str", "0.1"), ("bool", True)],
    "seed": [("negative", -1), ("float", 2.5), ("str", "1"), ("bool", True)],
    "validation_data": [
        ("features", "FEATURES"),
        ("nan", "NAN"),
        ("lengths", "LENGTHS"),
        ("one-array", "ONE"),
        ("none-pair", (None, None)),
    ],
}
PREDICT_ARGS: dict[str, list[tuple[str, Any]]] = {
    "coverage": [*_LEVEL_BAD, ("list-with-bad", [0.5, 1.5]), ("empty", [])],
    "alpha": [*_LEVEL_BAD, ("list-with-bad", [0.1, NAN]), ("empty", [])],
    "samples": _COUNT_BAD,
    "sample_weight": [("negative", "NEG"), ("zeros", "ZEROS"), ("nan", "NAN"), ("short", "SHORT")],
}


def _validation(value: Any, X: np.ndarray, y: np.ndarray) -> Any:
    if not isinstance(value, str):
        return value
    Xv, yv = X[:10].copy(), y[:10].copy()
    if value == "FEATURES":
        return Xv[:, :2], yv
    if value == "NAN":
        yv[0] = NAN
        return Xv, yv
    if value == "LENGTHS":
        return Xv, yv[:5]
    return Xv


def _fit_arg(make: Callable[..., Any], arg: str, value: Any) -> Outcome:
    X, y = data()
    if arg == "validation_data":
        value = _validation(value, X, y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = make().fit(X, y, **{arg: value})
    except Exception as err:
        return refused(err, [arg])
    return Outcome("silently-wrong", f"accepted {arg}={value!r:.60}; fitted: {hasattr(est, 'n_features_in_')}")


def _predict_arg(make: Callable[..., Any], arg: str, value: Any) -> Outcome:
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X, y)
    Xt, yt = X[:8], y[:8]
    before = est.predict(Xt)
    if arg == "sample_weight":
        w = {"NEG": -np.ones(8), "ZEROS": np.zeros(8), "NAN": np.full(8, NAN), "SHORT": np.ones(3)}[value]
        action: Callable[[], Any] = lambda: est.score(Xt, yt, sample_weight=w)
    elif arg == "samples":
        action = lambda: est.predict(Xt, samples=value)
    elif arg == "coverage":
        action = lambda: est.predict_interval(Xt, coverage=value)
    else:
        action = lambda: est.predict_quantiles(Xt, alpha=value)
    try:
        result = action()
    except Exception as err:
        out = refused(err, [arg])
        if not np.array_equal(est.predict(Xt), before):
            return Outcome("loses-data", f"{out.message} | predictions changed")
        return out
    finite = bool(np.isfinite(np.asarray(result, dtype=float)).all())
    return Outcome("silently-wrong", f"accepted {arg}={value!r:.40}; result {'finite' if finite else 'NOT finite'}")


def _valid_data(make: Callable[..., Any], kind: str) -> Outcome:
    X, y = data()
    inputs = {
        "int X": (np.round(X * 3).astype(np.int64), y),
        "float32 tensors": (torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)),
        "pandas frame and series": (pd.DataFrame(X, columns=["a", "b", "c"]), pd.Series(y, name="t")),
        "y column (n, 1)": (X, y[:, None]),
        "list of lists": (X.tolist(), y.tolist()),
    }[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = make().fit(*inputs)
            pred = est.predict(inputs[0])
    except Exception as err:
        return Outcome("refused-valid", short(err))
    if pred.shape != (len(y),) or not np.isfinite(pred).all():
        return Outcome("silently-wrong", f"predictions of shape {pred.shape}, finite: {np.isfinite(pred).all()}")
    return Outcome("ok", "fitted, finite predictions of shape (n,)")


def cases() -> list[Case]:
    out: list[Case] = []
    for name in ("MDN", "BNN", "MDNEnsemble"):
        make = ESTIMATORS[name][0]
        for arg, values in FIT_ARGS.items():
            for i, (label, value) in enumerate(values):
                out.append(
                    Case(
                        "uq-args",
                        f"{name}.fit({arg}={label})",
                        lambda m=make, a=arg, v=value: _fit_arg(m, a, v),
                        quick=name == "MDN" and i == 0,
                    )
                )
        for arg, values in PREDICT_ARGS.items():
            if arg == "samples" and name != "BNN":
                continue
            for i, (label, value) in enumerate(values):
                out.append(
                    Case(
                        "uq-args",
                        f"{name}.{arg}={label}",
                        lambda m=make, a=arg, v=value: _predict_arg(m, a, v),
                        quick=name == "MDN" and i == 0,
                    )
                )
        for kind in ("int X", "float32 tensors", "pandas frame and series", "y column (n, 1)", "list of lists"):
            out.append(Case("uq-data", f"{name}.fit({kind}) (valid)", lambda m=make, k=kind: _valid_data(m, k)))
    return out
