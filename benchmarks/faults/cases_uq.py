"""The scikit-learn-style estimators of ``hidlr.uq``: every constructor parameter (read from the
signature) with the wrong values of its kind, bad data (NaN, inf, empty, mismatched shapes, wrong
dtypes, one row), prediction before ``fit`` and with bad ``X``, and a re-fit that fails part-way
(the previous fitted model must survive, bitwise)."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from harness import Case, Outcome, refused, short

from hidlr.uq.models import (
    BNN,
    MDN,
    BayesianMDN,
    ConformalRegressor,
    DeepEnsemble,
    LastLayerLaplace,
    MCDropout,
    MDNEnsemble,
)

NAN, INF = math.nan, math.inf
QUICK_EPOCHS = 2


def _deep_ensemble(**kw: Any) -> DeepEnsemble:
    return DeepEnsemble(**{"estimator": MDN(components=1, epochs=QUICK_EPOCHS), "members": 2, **kw})


def _conformal(**kw: Any) -> ConformalRegressor:
    return ConformalRegressor(**{"estimator": MDN(components=1, epochs=QUICK_EPOCHS), **kw})


# name -> (factory taking keyword overrides, the class whose signature lists the parameters)
ESTIMATORS: dict[str, tuple[Callable[..., Any], type]] = {
    "MDN": (lambda **kw: MDN(**{"epochs": QUICK_EPOCHS, **kw}), MDN),
    "BNN": (lambda **kw: BNN(**{"epochs": QUICK_EPOCHS, "samples": 4, **kw}), BNN),
    "MCDropout": (lambda **kw: MCDropout(**{"epochs": QUICK_EPOCHS, "samples": 4, **kw}), MCDropout),
    "BayesianMDN": (lambda **kw: BayesianMDN(**{"epochs": QUICK_EPOCHS, "samples": 4, **kw}), BayesianMDN),
    "LastLayerLaplace": (
        lambda **kw: LastLayerLaplace(**{"epochs": QUICK_EPOCHS, "samples": 8, **kw}),
        LastLayerLaplace,
    ),
    "MDNEnsemble": (lambda **kw: MDNEnsemble(**{"epochs": QUICK_EPOCHS, "members": 2, **kw}), MDNEnsemble),
    "DeepEnsemble": (_deep_ensemble, DeepEnsemble),
    "ConformalRegressor": (_conformal, ConformalRegressor),
}

_BY_NAME: dict[str, list[tuple[str, Any]]] = {
    "hidden": [("empty", ()), ("zero", (0,)), ("negative", (-5,)), ("str", "50"), ("float", 2.5), ("bool", (True,))],
    "activation": [("unknown", "bogus"), ("int", 3)],
    "optimizer": [("unknown", "bogus"), ("int", 3), ("instance", "SGD-INSTANCE")],
    "estimator": [("int", 3), ("str", "MDN"), ("none", None)],
    "method": [("unknown", "bogus"), ("int", 3)],
    "target_scaling": [("unknown", "bogus"), ("int", 3)],
    "random_state": [("str", "3"), ("float", 2.5), ("bool", True), ("nan", NAN), ("negative", -1)],
}


def _wrong_values(name: str, default: Any) -> list[tuple[str, Any]]:
    if name in _BY_NAME:
        return _BY_NAME[name]
    if isinstance(default, bool):
        return [("int", 1), ("str", "yes"), ("none", None)]
    if isinstance(default, int):
        return [("str", "3"), ("float", 2.5), ("bool", True), ("nan", NAN), ("negative", -1), ("zero", 0)]
    if isinstance(default, float):
        return [("str", "x"), ("bool", True), ("nan", NAN), ("inf", INF), ("negative", -1.0)]
    if default is None:
        return [("str", "x"), ("negative", -1), ("nan", NAN)]
    raise RuntimeError(f"the sweep does not know the kind of parameter {name} (default {default!r})")


def data(n: int = 40, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ np.arange(1, d + 1) + 0.1 * rng.normal(size=n)


def _quiet_fit(est: Any, X: Any, y: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


def _param_case(name: str, make: Callable[..., Any], param: str, value: Any) -> Outcome:
    if isinstance(value, str) and value == "SGD-INSTANCE":
        value = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    X, y = data()
    try:
        est = make(**{param: value})
        _quiet_fit(est, X, y)
    except Exception as err:
        return refused(err, [param])
    finite = bool(np.isfinite(est.predict(X)).all())
    return Outcome("silently-wrong", f"accepted {param}={value!r}; predictions {'finite' if finite else 'NOT finite'}")


def _bad_data(make: Callable[..., Any], X: Any, y: Any, words: list[str]) -> Outcome:
    try:
        _quiet_fit(make(), X, y)
    except Exception as err:
        return refused(err, words)
    return Outcome("silently-wrong", "accepted")


def _bad_datasets() -> dict[str, tuple[Any, Any, list[str]]]:
    X, y = data()
    Xn, yn, Xi = X.copy(), y.copy(), X.copy()
    Xn[3, 1], yn[5], Xi[2, 0] = NAN, NAN, INF
    yi = y.copy()
    yi[0] = -INF
    return {
        "NaN in X": (Xn, y, ["X", "NaN"]),
        "inf in X": (Xi, y, ["X", "inf"]),
        "NaN in y": (X, yn, ["y", "NaN"]),
        "inf in y": (X, yi, ["y", "inf"]),
        "empty X": (X[:0], y[:0], ["X"]),
        "no features": (X[:, :0], y, ["X"]),
        "y shorter than X": (X, y[:-3], ["X", "y"]),
        "X 1-D": (X[:, 0], y, ["X"]),
        "X 3-D": (X[:, :, None], y, ["X"]),
        "y 2 columns": (X, np.stack([y, y], 1), ["y"]),
        "X strings": (X.astype(str).astype(object) + "a", y, ["X"]),
        "y complex": (X, y + 1j, ["y"]),
        "X None": (None, y, ["X"]),
        "y None": (X, None, ["y"]),
        "X dicts": (np.array([{"a": 1}] * len(y), dtype=object)[:, None], y, ["X"]),
    }


def _tiny(make: Callable[..., Any], n: int) -> Outcome:
    """``n`` rows: refused naming the rows, or fitted with finite predictions."""
    X, y = data(n=n)
    try:
        est = _quiet_fit(make(), X, y)
    except Exception as err:
        return refused(err, ["rows"]) if "row" in str(err) else refused(err, ["X"])
    Xt = data(n=5, seed=1)[0]
    pred, var = est.predict(Xt), est.predict_proba(Xt).variance.numpy()
    if not (np.isfinite(pred).all() and np.isfinite(var).all() and (var > 0).all()):
        return Outcome("silently-wrong", f"fitted on {n} row(s); means {pred}, variances {var}")
    return Outcome("ok", f"fitted on {n} row(s): finite means, finite positive variances")


def _fingerprint(est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = est.predict_proba(X)
    return est.predict(X), np.asarray(dist.variance if hasattr(dist, "variance") else dist.mean)


class _FailingStep(torch.optim.Adam):
    """Adam whose ``step`` raises at its second call (a fit fails part-way, after one update)."""

    def __init__(self, groups: list[dict[str, Any]]) -> None:
        super().__init__(groups, lr=1e-3)
        self.calls = 0

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("simulated failure part-way through the fit")
        return super().step(closure)


def _refit_fails(name: str, make: Callable[..., Any], how: str) -> Outcome:
    X, y = data()
    Xt = data(n=7, seed=2)[0]
    est = _quiet_fit(make(), X, y)
    before = _fingerprint(est, Xt)
    kw: dict[str, Any] = {}
    Xb, yb = X, y
    if how == "bad data":
        Xb = X.copy()
        Xb[0, 0] = NAN
    elif name == "ConformalRegressor":
        est.estimator.set_params(optimizer=_FailingStep)
    elif name == "DeepEnsemble":
        est.estimator.set_params(optimizer=_FailingStep)
    else:
        est.set_params(optimizer=_FailingStep)
    try:
        _quiet_fit(est, Xb, yb, **kw)
    except Exception as err:
        msg = short(err)
    else:
        return Outcome("silently-wrong", "the failing re-fit was accepted")
    try:
        after = _fingerprint(est, Xt)
    except Exception as err:
        return Outcome("loses-data", f"{msg} | the fitted model is gone: {short(err)}")
    same = all(np.array_equal(a, b) for a, b in zip(before, after))
    return Outcome("refused-clear", msg) if same else Outcome("loses-data", f"{msg} | the fitted model changed")


def _before_fit(make: Callable[..., Any], method: str) -> Outcome:
    X, y = data(n=5)
    est = make()
    calls = {
        "predict": lambda: est.predict(X),
        "predict_proba": lambda: est.predict_proba(X),
        "predict_interval": lambda: est.predict_interval(X),
        "score": lambda: est.score(X, y),
    }
    try:
        calls[method]()
    except Exception as err:
        return refused(err, ["fit"], (ValueError, AttributeError))
    return Outcome("silently-wrong", "predicted without a fit")


def _bad_predict(make: Callable[..., Any], how: str) -> Outcome:
    X, y = data()
    if how.startswith("columns"):  # fitted on a frame, predicted on one with other columns
        import pandas as pd

        frame = pd.DataFrame(X, columns=["a", "b", "c"])
        est = _quiet_fit(make(), frame, y)
        Xp = frame[["b", "a", "c"]] if how == "columns reordered" else frame.rename(columns={"a": "z"})
        try:
            est.predict(Xp)
        except Exception as err:
            return refused(err, ["feature names", "order" if how == "columns reordered" else "z"])
        return Outcome("silently-wrong", "predicted")
    est = _quiet_fit(make(), X, y)
    Xp = {"NaN": np.where(np.eye(5, 3) > 0, NAN, 0.0), "features": np.zeros((5, 4)), "1-D": np.zeros(3)}[how]
    try:
        est.predict(Xp)
    except Exception as err:
        return refused(err, ["X"])
    return Outcome("silently-wrong", "predicted")


def cases() -> list[Case]:
    out: list[Case] = []
    for name, (make, cls) in ESTIMATORS.items():
        sig = inspect.signature(cls.__init__).parameters
        for param, p in ((q, v) for q, v in sig.items() if q != "self"):
            default = p.default if p.default is not inspect.Parameter.empty else None
            for j, (label, value) in enumerate(_wrong_values(param, default)):
                out.append(
                    Case(
                        "uq-params",
                        f"{name}({param}={label})",
                        lambda m=make, pa=param, v=value, n=name: _param_case(n, m, pa, v),
                        quick=(name == "MDN" and j == 0),
                    )
                )
        for label, (X, y, words) in _bad_datasets().items():
            out.append(
                Case(
                    "uq-data",
                    f"{name}.fit({label})",
                    lambda m=make, X=X, y=y, w=words: _bad_data(m, X, y, w),
                    quick=name == "MDN",
                )
            )
        for n in (1, 2):
            out.append(Case("uq-data", f"{name}.fit({n} row(s))", lambda m=make, n=n: _tiny(m, n), quick=name == "MDN"))
        for how in ("bad data", "step raises part-way"):
            out.append(
                Case(
                    "uq-refit", f"{name} re-fit: {how}", lambda n=name, m=make, h=how: _refit_fails(n, m, h), quick=True
                )
            )
        for method in ("predict", "predict_proba", "predict_interval", "score"):
            out.append(Case("uq-predict", f"{name}.{method} before fit", lambda m=make, me=method: _before_fit(m, me)))
        for how in ("NaN", "features", "1-D", "columns reordered", "columns renamed"):
            out.append(Case("uq-predict", f"{name}.predict(X {how})", lambda m=make, h=how: _bad_predict(m, h)))
    return out
