"""Validation of HiDLR's constructor arguments: each bad value refused with an error naming it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must not be NaN")
    return out


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_count(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, refused unless it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_every(every: Any) -> int | str:
    if isinstance(every, str):
        if every != "auto":
            raise ValueError(f"every must be a positive int or 'auto', got {every!r}")
        return every
    if isinstance(every, bool) or not isinstance(every, numbers.Integral):
        raise TypeError(f"every must be a positive int or 'auto', got {type(every).__name__} {every!r}")
    if every < 1:
        raise ValueError(f"every must be a positive int or 'auto', got {every!r}")
    return int(every)


def check_finite_option(value: Any) -> bool | str:
    """``check_finite``: True (every step), ``"refresh"`` (refresh steps) or False."""
    if isinstance(value, str):
        return check_choice("check_finite", value, ("refresh",))
    if not isinstance(value, bool):
        raise TypeError(f"check_finite must be True, False or 'refresh', got {type(value).__name__} {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_probes(probes: Any) -> tuple[float, ...]:
    if isinstance(probes, (str, bytes)) or not isinstance(probes, Sequence):
        raise TypeError(f"probes must be a sequence of numbers, got {type(probes).__name__} {probes!r}")
    points = tuple(_real("probes entries", p) for p in probes)
    if len(set(points)) < 3 or any(p == 0 or not math.isfinite(p) for p in points):
        raise ValueError(
            "probes needs at least 3 distinct, finite, non-zero multiples "
            f"(2 unknowns per group plus a residual), got {tuple(probes)}"
        )
    return points


def check_clip(clip: Any, name: str = "clip") -> tuple[float, float] | None:
    """``clip`` (or ``first_clip``, named ``name``): None or a pair (lo, hi) with 0 < lo <= 1 <= hi < inf."""
    if clip is None:
        return None
    if isinstance(clip, (str, bytes)) or not isinstance(clip, Sequence) or len(clip) != 2:
        raise TypeError(f"{name} must be None or a pair (lo, hi), got {clip!r}")
    lo, hi = _real(f"{name}[0]", clip[0]), _real(f"{name}[1]", clip[1])
    if not (0 < lo <= 1.0 <= hi < math.inf):
        raise ValueError(f"{name} must be None or (lo, hi) with 0 < lo <= 1 <= hi < inf, got {tuple(clip)}")
    return lo, hi


def check_unit(name: str, value: Any, closed_top: bool = True) -> float:
    out = _real(name, value)
    if not (0.0 <= out <= 1.0 if closed_top else 0.0 <= out < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if closed_top else ')'}, got {value}")
    return out


def check_anneal(value: Any, raw: bool = False) -> float | None:
    """``anneal``: ``"auto"`` (:data:`ANNEAL`, or None in the raw Newton mode), None, or the final
    fraction of ``total_steps`` over which the rates fall linearly to 0, in (0, 1]."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"anneal must be 'auto', None or a fraction in (0, 1], got {value!r}")
        return None if raw else ANNEAL
    if value is None:
        return None
    out = _real("anneal", value)
    if not 0.0 < out <= 1.0:
        raise ValueError(f"anneal must be 'auto', None or a fraction in (0, 1], got {value!r}")
    return out


def check_total_steps(value: Any) -> int | None:
    """``total_steps``: None or a positive int (the run's step budget)."""
    return None if value is None else check_count("total_steps", value, 1)


# the default clip of the first refresh: a start rate up to 100x too large is cut at once
FIRST_CLIP = (0.01, 2.0)
# the default anneal: the last fifth of a known step budget, rates falling linearly to 0 (docs/diagnosis.md, round 4)
ANNEAL = 0.2
# the default most groups refreshed one by one; beyond it the one-group rule (see RuleConfig.max_groups)
MAX_GROUPS = 8


def check_options(
    *,
    every: Any,
    mode: Any,
    probes: Any,
    design: Any,
    joint: Any,
    ema: Any,
    clip: Any,
    min_r2: Any,
    max_every: Any,
    probe: Any,
    seed: Any,
    check_finite: Any,
    rollback: Any,
    horizon: Any,
    history_size: Any,
    groups_per_refresh: Any,
    shrink: Any = None,
    travel: Any = None,
    first_clip: Any = "auto",
    max_groups: Any = "auto",
    total_steps: Any = None,
    anneal: Any = "auto",
) -> dict[str, Any]:
    """All of HiDLR's options checked and normalised (``joint``, ``horizon``, ``shrink``, ``travel``,
    ``first_clip``, ``max_groups`` and ``anneal`` resolved from their defaults). Raises TypeError or ValueError
    naming the argument."""
    out: dict[str, Any] = {
        "every": check_every(every),
        "mode": check_choice("mode", mode, ("diag", "full")),
        "probes": check_probes(probes),
        "design": check_choice("design", design, ("lines", "random")),
        "ema": check_unit("ema", ema, closed_top=False),
        "clip": check_clip(clip),
        "min_r2": check_unit("min_r2", min_r2),
        "max_every": None if max_every is None else check_count("max_every", max_every, 1),
        "seed": check_count("seed", seed, 0),
        "check_finite": check_finite_option(check_finite),
        "rollback": _flag("rollback", rollback),
        "history_size": check_count("history_size", history_size, 0),
        "groups_per_refresh": None
        if groups_per_refresh is None
        else check_count("groups_per_refresh", groups_per_refresh, 1),
        "total_steps": check_total_steps(total_steps),
    }
    if out["seed"] >= 2**32:
        raise ValueError(f"seed must be < 2**32, got {seed}")
    if probe is not None and not callable(probe):
        raise TypeError(f"probe must be None or a callable returning the loss, got {type(probe).__name__}")
    raw = out["ema"] == 0.0 and out["clip"] is None
    out["joint"] = (not raw) if joint is None else _flag("joint", joint)
    out["horizon"] = (0.0 if raw else 0.5) if horizon is None else check_unit("horizon", horizon)
    if isinstance(shrink, str):
        if shrink != "auto":
            raise ValueError(f"shrink must be 'auto', None or in [0, 1], got {shrink!r}")
        out["shrink"] = None if raw else 0.5
    else:
        out["shrink"] = None if shrink is None else check_unit("shrink", shrink)
    out["travel"] = (not raw) if travel is None else _flag("travel", travel)
    out["anneal"] = check_anneal(anneal, raw)
    if isinstance(max_groups, str):
        if max_groups != "auto":
            raise ValueError(f"max_groups must be 'auto', None or a positive int, got {max_groups!r}")
        out["max_groups"] = None if raw else MAX_GROUPS
    else:
        out["max_groups"] = None if max_groups is None else check_count("max_groups", max_groups, 1)
    if isinstance(first_clip, str):
        if first_clip != "auto":
            raise ValueError(f"first_clip must be 'auto', None or a pair (lo, hi), got {first_clip!r}")
        out["first_clip"] = None if raw else FIRST_CLIP
    else:
        out["first_clip"] = None if first_clip is None else check_clip(first_clip, "first_clip")
    return out
