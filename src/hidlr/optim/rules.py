"""From a fitted quadratic to new rates: acceptance, clipping and smoothing (spec section 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hidlr.optim.quadfit import QuadFit


@dataclass
class Proposal:
    """Per-group outcome of one refresh, in rate multiples of the current rate.

    ``multiple[k]`` is the proposed rate divided by the current one (NaN where rejected); ``reason[k]``
    is None when accepted, else why the group keeps its rate.
    """

    multiple: list[float]
    reason: list[str | None]


def _diag_reasons(fit: QuadFit, k: int, min_r2: float) -> str | None:
    a, b, r2 = float(fit.A[k, k]), float(fit.b[k]), float(fit.r2[k])
    if not (math.isfinite(a) and math.isfinite(b)):
        return "non-finite fit"
    if a <= 0:
        return "not convex along the update (a <= 0)"
    if b <= 0:
        return "not a descent direction (b <= 0)"
    if math.isfinite(r2) and r2 < min_r2:
        return f"poor quadratic fit (R^2 = {r2:.3f} < {min_r2})"
    return None


def propose(fit: QuadFit, active: list[bool], mode: str, min_r2: float) -> Proposal:
    """Newton multiples: diag ``b_k / A_kk`` per group; full ``A^-1 b`` over the active groups.

    Full mode falls back to the diagonal rule when the active block of A is not positive definite or
    the joint fit is poor; groups whose full-mode multiple is not positive keep their rate.
    """
    k = len(active)
    multiple = [float("nan")] * k
    reason: list[str | None] = ["frozen or skipped"] * k
    idx = [g for g in range(k) if active[g]]
    if mode == "full" and len(idx) > 1:
        block = fit.A[idx][:, idx]
        chol, info = torch.linalg.cholesky_ex(block)
        if int(info) == 0 and fit.r2_all >= min_r2:
            z = torch.cholesky_solve(fit.b[idx].unsqueeze(1), chol).squeeze(1)
            for j, g in enumerate(idx):
                if float(z[j]) > 0 and math.isfinite(float(z[j])):
                    multiple[g], reason[g] = float(z[j]), None
                else:
                    reason[g] = "full-mode rate not positive"
            return Proposal(multiple, reason)
        fallback = ("A not positive definite" if int(info) != 0
                    else f"poor joint fit (R^2 = {fit.r2_all:.3f})")
        prop = propose(fit, active, "diag", min_r2)
        prop.reason = [r if r is None or not active[g] else f"{fallback}; {r}"
                       for g, r in enumerate(prop.reason)]
        return prop
    for g in idx:
        reason[g] = _diag_reasons(fit, g, min_r2)
        if reason[g] is None:
            multiple[g] = float(fit.b[g] / fit.A[g, g])
    return Proposal(multiple, reason)


def smooth(previous: float, proposed: float, clip: tuple[float, float] | None, ema: float) -> float:
    """Clip ``proposed`` to ``[clip[0] * previous, clip[1] * previous]``, then ``ema * previous +
    (1 - ema) * clipped``."""
    if clip is not None:
        proposed = min(max(proposed, clip[0] * previous), clip[1] * previous)
    return ema * previous + (1.0 - ema) * proposed
