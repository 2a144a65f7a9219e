"""Shared helpers for benchmark reports: aggregation, log-log slope fits, tables, durations.

Run plumbing (metadata, JSON files, the run journal, progress bars) lives in :mod:`hidlr.bench.harness`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def mean_se(values: Iterable[float]) -> dict[str, float]:
    """Mean and standard error of the mean (sample std with ddof=1 over sqrt(n)).

    Non-finite values are an error: they would silently poison a published table.
    Returns ``{"mean", "se", "n"}``; ``se`` is NaN for a single value.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("mean_se: no values to aggregate")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"mean_se: non-finite values in {arr.tolist()}")
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return {"mean": float(arr.mean()), "se": se, "n": int(arr.size)}


def fmt_mean_se(stat: dict[str, float] | None, digits: int = 2) -> str:
    """'m ± s' for a :func:`mean_se` result ('—' when missing)."""
    if stat is None:
        return "—"
    m, s = stat["mean"], stat["se"]
    if not math.isfinite(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def loglog_slope(n: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``log(values) = a + b log(n)``; returns ``(b, a)``.

    n, values: equal-length sequences of positive numbers (at least two distinct n).
    """
    x = np.asarray(n, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"loglog_slope: n and values must be 1-D of equal length, got {x.shape}, {y.shape}")
    if np.unique(x).size < 2:
        raise ValueError("loglog_slope: need at least two distinct sizes")
    if np.any(x <= 0) or np.any(y <= 0) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("loglog_slope: n and values must be finite and positive")
    lx, ly = np.log(x), np.log(y)
    b, a = np.polyfit(lx, ly, 1)
    return float(b), float(a)


def slope_summary(
    sizes: Sequence[float], per_seed: Sequence[Sequence[float]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Slope of log KL against log n with its spread.

    per_seed: (seeds, sizes) values (e.g. KL for each seed at each size). Values <= 0 (a Monte
    Carlo KL estimate can dip below zero) are clipped to 1e-6 and counted in ``clipped``.
    Returns the pooled fit (all points), per-seed slopes with mean ± s.e., and a bootstrap 95%
    interval from resampling seeds with replacement.
    """
    vals = np.asarray(per_seed, dtype=np.float64)
    sz = np.asarray(sizes, dtype=np.float64)
    if vals.ndim != 2 or vals.shape[1] != sz.size:
        raise ValueError(f"slope_summary: per_seed must be (seeds, {sz.size}), got {vals.shape}")
    clipped = int(np.sum(vals <= 1e-6))
    vals = np.maximum(vals, 1e-6)
    seeds = vals.shape[0]
    per = [loglog_slope(sz, row)[0] for row in vals]
    pooled, icpt = loglog_slope(np.tile(sz, seeds), vals.reshape(-1))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, seeds, seeds)
        boots.append(loglog_slope(np.tile(sz, seeds), vals[idx].reshape(-1))[0])
    lo, hi = np.percentile(boots, [2.5, 97.5]) if seeds > 1 else (float("nan"), float("nan"))
    out = {
        "pooled_slope": pooled,
        "intercept": icpt,
        "per_seed_slopes": per,
        "per_seed": mean_se(per),
        "boot_ci95": [float(lo), float(hi)],
        "clipped": clipped,
    }
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def format_seconds(s: float) -> str:
    """'1h02m', '3m05s' or '12.3s'."""
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.1f}s"


def call_timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` and return ``(result, seconds)`` (wall clock, perf_counter)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
