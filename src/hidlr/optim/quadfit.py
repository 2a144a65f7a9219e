"""Least-squares fits of the quadratic loss model along the update, from probe losses.

Model, in rate multiples ``z`` (z_k = eta_k / h_k, with h_k the current rate):

    y(z) = L(w - sum_k z_k delta_k) - L(w) ~= -b^T z + 1/2 z^T A z

``b`` (K,) and ``A`` (K, K) here are in those normalised units; ``b_k / h_k`` and ``A_kl / (h_k h_l)``
are the spec's ``b_k = G_k^T d_k`` and ``A_kl = d_k^T H_kl d_l``. All arithmetic is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuadFit:
    """A fitted quadratic model. ``b`` (K,), ``A`` (K, K), ``r2`` (K,): fit quality per group (NaN where
    the group has no probes of its own), ``r2_all``: over all probes."""

    b: torch.Tensor
    A: torch.Tensor
    r2: torch.Tensor
    r2_all: float


def _features(z: torch.Tensor, full: bool) -> torch.Tensor:
    """Design features, (J, F): [-z_k] for b, [z_k^2 / 2] for A_kk, and [z_k z_l] (k < l) for A_kl."""
    cols = [-z, 0.5 * z * z]
    if full:
        k = z.shape[1]
        iu = torch.triu_indices(k, k, offset=1)
        cols.append(z[:, iu[0]] * z[:, iu[1]])
    return torch.cat(cols, dim=1)


def _r2(y: torch.Tensor, pred: torch.Tensor) -> float:
    """Coefficient of determination of ``pred`` for ``y`` (1 when both are constant and equal)."""
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("-inf")
    return 1.0 - ss_res / ss_tot


def fit_quadratic(z: torch.Tensor, y: torch.Tensor, active: torch.Tensor, full: bool) -> QuadFit:
    """Fit b and A (diagonal, or full with cross terms) to probe losses by least squares.

    z: (J, K) probe multiples; y: (J,) loss differences to the unperturbed loss; active: (K,) bool.
    Columns of inactive groups are dropped; their b, A entries are 0 and r2 NaN.
    """
    z = z.to(torch.float64)
    y = y.to(torch.float64)
    k = z.shape[1]
    idx = torch.nonzero(active, as_tuple=False).flatten()
    m = len(idx)
    b = torch.zeros(k, dtype=torch.float64)
    a = torch.zeros(k, k, dtype=torch.float64)
    r2 = torch.full((k,), float("nan"), dtype=torch.float64)
    if m == 0:
        return QuadFit(b, a, r2, float("nan"))
    zs = z[:, idx]
    x = _features(zs, full)
    if x.shape[0] < x.shape[1]:
        raise ValueError(f"probe design has {x.shape[0]} probes for {x.shape[1]} unknowns")
    coef = torch.linalg.lstsq(x, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    b_s = coef[:m]
    a_s = torch.diag(coef[m : 2 * m])
    if full and m > 1:
        iu = torch.triu_indices(m, m, offset=1)
        a_s[iu[0], iu[1]] = coef[2 * m :]
        a_s[iu[1], iu[0]] = coef[2 * m :]
    pred = x @ coef
    b[idx] = b_s
    a[idx.unsqueeze(1), idx.unsqueeze(0)] = a_s
    for j, g in enumerate(idx.tolist()):
        own = (zs[:, j] != 0) & ((zs != 0).sum(dim=1) == 1)
        if int(own.sum()) > 2:
            r2[g] = _r2(y[own], pred[own])
    return QuadFit(b, a, r2, _r2(y, pred))


def fit_line(s: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """Fit ``y = -beta s + alpha s^2 / 2`` through the origin. s, y: (J,). Returns (beta, alpha, r2)."""
    fit = fit_quadratic(s.to(torch.float64).unsqueeze(1), y, torch.ones(1, dtype=torch.bool), full=False)
    r2 = float(fit.r2[0]) if len(s) > 2 else fit.r2_all
    return float(fit.b[0]), float(fit.A[0, 0]), r2


def fit_finite_probes(
    z: torch.Tensor, y: torch.Tensor, loss0_finite: bool, active: list[bool], full: bool
) -> tuple[QuadFit, list[bool]]:
    """Fit from the finite probes only. z: (J, K), y: (J,). A group any non-finite probe moved (every
    group, when the unmoved loss itself is not finite) is left out of the fit, and so are the
    probes that moved it. Returns the fit and, per group, whether it was fitted."""
    k = len(active)
    finite = torch.isfinite(y)
    touched_bad = (z[~finite] != 0).any(dim=0) if bool((~finite).any()) else torch.zeros(k, dtype=torch.bool)
    if not loss0_finite:
        touched_bad = torch.ones(k, dtype=torch.bool)
    fit_active = [bool(active[g]) and not bool(touched_bad[g]) for g in range(k)]
    mask = torch.tensor(fit_active, dtype=torch.bool)
    rows = finite & ((z != 0) & ~mask).logical_not().all(dim=1) if len(z) else finite
    return fit_quadratic(z[rows], y[rows], mask, full=full), fit_active
