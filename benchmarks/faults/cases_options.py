"""Constructor arguments of ``hidlr.HiDLR``: every argument of the signature gets the wrong values of
its kind (wrong type, bool where an int goes, NaN, inf, negative, zero, out of range, wrong-length
tuple, string); each must be refused with TypeError / ValueError naming the argument. A few valid
values per kind are controls: they must be accepted (``refused-valid`` otherwise)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
from harness import Case, Outcome, refused

from hidlr import HiDLR

NAN, INF = math.nan, math.inf

# the kind of each argument; the sweep fails when the signature has an argument not listed here
KINDS: dict[str, str] = {
    "every": "period",
    "mode": "choice",
    "probes": "probes",
    "design": "choice",
    "joint": "flag_or_none",
    "ema": "unit_open",
    "clip": "pair_or_none",
    "min_r2": "unit",
    "max_every": "pos_int_or_none",
    "probe": "callable_or_none",
    "seed": "seed",
    "check_finite": "check_finite",
    "rollback": "flag",
    "horizon": "unit_or_none",
    "history_size": "nonneg_int",
    "groups_per_refresh": "pos_int_or_none",
    "shrink": "unit_auto_or_none",
    "travel": "flag_or_none",
    "first_clip": "pair_auto_or_none",
    "max_groups": "pos_int_auto_or_none",
    "total_steps": "pos_int_or_none",
    "anneal": "unit_auto_or_none",
}

_INT_BAD = [("str", "3"), ("float", 2.5), ("bool", True), ("nan", NAN), ("inf", INF), ("negative", -1), ("list", [3])]
_UNIT_BAD = [
    ("str", "0.5"),
    ("bool", True),
    ("nan", NAN),
    ("inf", INF),
    ("negative", -0.1),
    ("above-1", 1.5),
    ("list", [0.5]),
    ("complex", 0.5j),
    ("tensor", torch.tensor([0.5, 0.5])),
]
_PAIR_BAD = [
    ("str", "ab"),
    ("number", 2.0),
    ("1-tuple", (0.5,)),
    ("3-tuple", (0.5, 2.0, 3.0)),
    ("nan", (NAN, 2.0)),
    ("inf", (0.5, INF)),
    ("negative", (-1.0, 2.0)),
    ("zero", (0.0, 2.0)),
    ("reversed", (2.0, 0.5)),
    ("bool", (True, 2.0)),
    ("str-entries", ("0.5", "2")),
]
_FLAG_BAD = [("int", 1), ("zero", 0), ("str", "yes"), ("nan", NAN), ("list", [True])]

BAD: dict[str, list[tuple[str, Any]]] = {
    "period": [("zero", 0), ("bool", True), ("str", "fast"), *[c for c in _INT_BAD if c[0] != "bool"], ("none", None)],
    "choice": [("unknown", "bogus"), ("upper", "DIAG_"), ("empty", ""), ("int", 1), ("none", None), ("bool", True)],
    "probes": [
        ("str", "abc"),
        ("number", 3),
        ("two", (1.0, 2.0)),
        ("zero", (0.0, 1.0, 2.0)),
        ("nan", (NAN, 1.0, 2.0)),
        ("inf", (INF, 1.0, 2.0)),
        ("repeated", (1.0, 1.0, 1.0)),
        ("bool", (True, 2.0, 3.0)),
        ("str-entries", ("1", "2", "3")),
        ("empty", ()),
        ("none", None),
    ],
    "flag": [*_FLAG_BAD, ("none", None)],
    "flag_or_none": _FLAG_BAD,
    "unit": _UNIT_BAD + [("none", None)],
    "unit_open": _UNIT_BAD + [("one", 1.0), ("none", None)],
    "unit_or_none": _UNIT_BAD,
    "unit_auto_or_none": [c for c in _UNIT_BAD if c[0] != "str"] + [("str", "half")],
    "pair_or_none": _PAIR_BAD,
    "pair_auto_or_none": [c for c in _PAIR_BAD if c[0] != "str"] + [("str", "wide")],
    "pos_int_or_none": [("zero", 0), *_INT_BAD],
    "pos_int_auto_or_none": [("zero", 0), *[c for c in _INT_BAD if c[0] != "str"], ("str", "many")],
    "nonneg_int": [*_INT_BAD, ("none", None)],
    "seed": [*_INT_BAD, ("too-large", 2**32), ("none", None)],
    "callable_or_none": [("int", 3), ("str", "probe"), ("tensor", torch.ones(()))],
    "check_finite": [("int", 1), ("str", "always"), ("none", None), ("nan", NAN)],
}

VALID: dict[str, list[tuple[str, Any]]] = {
    "period": [("int", 5), ("numpy-int", np.int64(5)), ("auto", "auto")],
    "probes": [("list", [-1.0, 1.0, 2.0]), ("ints", (-2, -1, 1, 2)), ("numpy", np.array([-1.0, 1.0, 2.0]).tolist())],
    "unit": [("zero", 0), ("numpy-float", np.float64(0.5))],
    "unit_open": [("zero", 0.0), ("numpy-float", np.float64(0.5))],
    "pair_or_none": [("none", None), ("list", [0.5, 2.0])],
    "pos_int_or_none": [("none", None), ("numpy-int", np.int64(3))],
    "nonneg_int": [("zero", 0)],
    "seed": [("zero", 0), ("largest", 2**32 - 1)],
    "flag_or_none": [("none", None), ("false", False)],
    "check_finite": [("refresh", "refresh"), ("false", False)],
}


def _optimizer() -> torch.optim.Optimizer:
    model = torch.nn.Linear(3, 1)
    return torch.optim.Adam(model.parameters(), lr=1e-2)


def _bad_case(arg: str, label: str, value: Any) -> Outcome:
    try:
        opt = HiDLR(_optimizer(), **{arg: value})
    except Exception as err:
        return refused(err, [arg])
    return Outcome("silently-wrong", f"accepted {arg}={value!r}: {_stored(opt, arg)}")


def _stored(opt: HiDLR, arg: str) -> str:
    value = getattr(opt, arg, None)
    if value is None:
        value = getattr(opt.rules, arg, None)
    return f"stored as {value!r}"


def _valid_case(arg: str, value: Any) -> Outcome:
    try:
        HiDLR(_optimizer(), **{arg: value})
    except Exception as err:
        return Outcome("refused-valid", f"{type(err).__name__}: {err}")
    return Outcome("ok", f"accepted {arg}={value!r}")


def cases() -> list[Case]:
    params = [p for p in inspect.signature(HiDLR.__init__).parameters if p not in ("self", "optimizer")]
    unknown = sorted(set(params) - set(KINDS))
    if unknown:
        raise RuntimeError(f"HiDLR has arguments the sweep does not know the kind of: {unknown}")
    out: list[Case] = []
    for arg in params:
        kind = KINDS[arg]
        for i, (label, value) in enumerate(BAD[kind]):
            out.append(
                Case("options", f"{arg}={label}", lambda a=arg, lb=label, v=value: _bad_case(a, lb, v), quick=i < 3)
            )
        for label, value in VALID.get(kind, []):
            out.append(Case("options", f"{arg}={label} (valid)", lambda a=arg, v=value: _valid_case(a, v)))
    for i, (label, value) in enumerate(BAD[KINDS["total_steps"]]):
        out.append(Case("options", f"opt.total_steps = {label}", lambda v=value: _set_total_steps(v), quick=i == 0))
    out.append(
        Case(
            "options",
            "optimizer=model",
            lambda: _wrapped_not_optimizer(),
            quick=True,
        )
    )
    return out


def _wrapped_not_optimizer() -> Outcome:
    try:
        HiDLR(torch.nn.Linear(2, 1))  # type: ignore[arg-type]
    except Exception as err:
        return refused(err, ["Optimizer"])
    return Outcome("silently-wrong", "accepted a module as the optimizer")


def _set_total_steps(value: Any) -> Outcome:
    """The settable ``total_steps``: a wrong value refused naming it, the previous value kept."""
    opt = HiDLR(_optimizer(), total_steps=100)
    try:
        opt.total_steps = value
    except Exception as err:
        out = refused(err, ["total_steps"])
        return out if opt.total_steps == 100 else Outcome("loses-data", f"{out.message} | total_steps changed")
    return Outcome("silently-wrong", f"accepted total_steps={value!r}")
