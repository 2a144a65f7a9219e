"""The minimiser of a convex quadratic over non-negative variables (a small box-constrained QP)."""

from __future__ import annotations

import torch


def nonneg_quadratic_min(a: torch.Tensor, b: torch.Tensor, max_iter: int | None = None) -> torch.Tensor:
    """``argmin_{z >= 0} -b^T z + z^T a z / 2`` for a symmetric positive definite ``a``.

    The Lawson-Hanson active-set method written for the quadratic: variables enter the free set
    while the negative gradient ``b - a z`` is positive at the bound, and the step towards the
    unconstrained minimiser of the free set is cut where a free variable reaches 0. Exact (up to
    rounding) after finitely many steps. a: (K, K), b: (K,); returns z (K,), float64.
    """
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    k = b.shape[0]
    if a.shape != (k, k):
        raise ValueError(f"a must be ({k}, {k}) for b of shape ({k},), got {tuple(a.shape)}")
    z = torch.zeros(k, dtype=torch.float64)
    free = torch.zeros(k, dtype=torch.bool)
    tol = 1e-12 * max(float(b.abs().max()) if k else 0.0, float(a.abs().max()) if k else 0.0, 1e-300)
    max_iter = 3 * k + 10 if max_iter is None else max_iter
    for _ in range(max_iter):
        w = b - a @ z
        candidates = (~free) & (w > tol)
        if not bool(candidates.any()):
            break
        free[int(torch.argmax(torch.where(candidates, w, torch.full_like(w, -torch.inf))))] = True
        for _ in range(max_iter):
            s = torch.zeros(k, dtype=torch.float64)
            idx = torch.nonzero(free).flatten()
            s[idx] = torch.linalg.solve(a[idx][:, idx], b[idx])
            bad = free & (s <= 0)
            if not bool(bad.any()):
                z = s
                break
            ratio = torch.where(bad, z / (z - s), torch.full_like(z, torch.inf))
            alpha = float(ratio.min())
            z = z + alpha * (s - z)
            free &= z > tol
            z = torch.where(free, z, torch.zeros_like(z))
    return z
