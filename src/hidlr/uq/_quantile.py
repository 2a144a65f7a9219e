"""Quantiles of per-input Gaussian mixtures by a vectorised, safeguarded Newton/bisection solver."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["mixture_quantile", "ndtr"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT1_2 = math.sqrt(0.5)


def ndtr(z: Tensor) -> Tensor:
    """Standard normal CDF with full relative accuracy in the lower tail.

    ``torch.special.ndtr`` loses relative accuracy below about -5 (it returns 0 at -10 on CPU);
    ``erfc`` keeps it down to the float64 underflow.
    """
    return 0.5 * torch.special.erfc(-z * _SQRT1_2)


def mixture_quantile(log_w: Tensor, loc: Tensor, scale: Tensor, q: Tensor, max_iter: int = 200) -> Tensor:
    """Solve ``F(x) = q`` for a Gaussian mixture, vectorised; all inputs float64.

    ``log_w, loc, scale``: ``(n, K)``; ``q`` in ``[0, 1]`` broadcastable to ``(*S, n)``; returns
    ``(*S, n)``. The root lies between the smallest and largest component quantiles at ``q``
    (there every ``F_k <= q``, resp. ``>= q``), so that bracket is exact. Each iteration takes a
    Newton step when it stays inside the bracket and shrinks faster than bisection would (the
    ``rtsafe`` rule), else bisects. For ``q > 1/2`` the equation is solved on the survival
    function for accuracy in the upper tail.
    """
    n, k = loc.shape
    shape = torch.broadcast_shapes(q.shape, (n,))
    qf = q.expand(shape).reshape(-1)  # (N,) flat levels
    rows = torch.arange(n, device=loc.device).expand(shape).reshape(-1)
    tiny = torch.finfo(torch.float64).tiny
    qc = qf.clamp(tiny, 1.0 - 1e-16)
    z = torch.special.ndtri(qc)
    if k == 1:  # a single Gaussian: closed form
        x = loc[rows, 0] + scale[rows, 0] * z
    else:
        x = _solve_quantile(log_w.exp(), loc, scale, rows, qc, z, max_iter)
    x = torch.where(qf <= 0, torch.full_like(x, -math.inf), x)
    x = torch.where(qf >= 1, torch.full_like(x, math.inf), x)
    return x.reshape(shape)


def _solve_quantile(w: Tensor, loc: Tensor, scale: Tensor, rows: Tensor, q: Tensor, z: Tensor, max_iter: int) -> Tensor:
    """Safeguarded Newton on flat problems: ``q``, ``z = ndtri(q)``, ``rows`` all ``(N,)``.

    Converged problems leave the active set, so the cost follows the slowest few only.
    """
    upper = q > 0.5
    target = torch.where(upper, 1.0 - q, q)  # probability in the tail we solve on
    sign = torch.where(upper, -1.0, 1.0)
    comp_q = loc[rows] + scale[rows] * z.unsqueeze(-1)  # (N, K) component quantiles
    lo = comp_q.min(-1).values
    hi = comp_q.max(-1).values
    del comp_q
    # start from the moment-matched Gaussian's quantile, clamped into the bracket
    mean = (w * loc).sum(-1)
    sd = (w * (scale.square() + (loc - mean.unsqueeze(-1)).square())).sum(-1).sqrt()
    x = torch.minimum(torch.maximum(mean[rows] + sd[rows] * z, lo), hi)
    out = x.clone()
    dx_old = hi - lo
    dx = dx_old.clone()
    active = torch.arange(q.shape[0], device=q.device)
    for _ in range(max_iter):
        r = rows[active]
        wr, lr, sr, sg = w[r], loc[r], scale[r], sign[active]
        zz = (x.unsqueeze(-1) - lr) / sr
        # lower tail: F(x) - q ; upper tail: (1 - q) - S(x); both increasing in x
        g = sg * ((wr * ndtr(sg.unsqueeze(-1) * zz)).sum(-1) - target[active])
        dens = (wr * torch.exp(-0.5 * zz.square() - _LOG_SQRT_2PI) / sr).sum(-1)
        lo = torch.where(g <= 0, x, lo)
        hi = torch.where(g >= 0, x, hi)
        step = g / dens
        newton = x - step
        tol = 1e-13 * torch.clamp(x.abs(), min=1.0)
        ok = torch.isfinite(newton) & (newton >= lo) & (newton <= hi) & (step.abs() * 2.0 <= dx_old.abs())
        # converged: the Newton correction (or the bracket) is below tolerance
        finished = (g == 0) | (torch.isfinite(step) & (step.abs() <= tol)) | ((hi - lo) <= tol)
        x = torch.where(ok, newton, torch.where(finished, x, 0.5 * (lo + hi)))
        dx_old, dx = dx, torch.where(ok, step, 0.5 * (hi - lo))
        out[active] = x
        keep = ~finished
        if not bool(keep.any()):
            break
        if bool((~keep).any()):
            idx = keep.nonzero().squeeze(-1)
            active, x, lo, hi, dx, dx_old = (t[idx] for t in (active, x, lo, hi, dx, dx_old))
    return out
