"""Shared helpers for benchmark reports: aggregation, log-log slope fits, tables, run metadata."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
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


def slope_summary(sizes: Sequence[float], per_seed: Sequence[Sequence[float]], n_boot: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
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
    out = {"pooled_slope": pooled, "intercept": icpt, "per_seed_slopes": per,
           "per_seed": mean_se(per), "boot_ci95": [float(lo), float(hi)], "clipped": clipped}
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def run_metadata(seeds: Any = None) -> dict[str, Any]:
    """Machine, versions and time stamp for a result file."""
    import subprocess

    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "machine": platform.node(), "git_commit": commit, "platform": platform.platform(), "processor": platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seeds": seeds,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_json(path: Path, obj: Any) -> None:
    """Write JSON (NaN/inf become null so the file stays standard JSON)."""
    def clean(o: Any) -> Any:
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, np.integer)):
            return clean(o.item())
        return o

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(obj), indent=1))


def make_progress(enabled: bool):
    """A rich progress bar with elapsed and remaining time (a no-op context when disabled)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


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
