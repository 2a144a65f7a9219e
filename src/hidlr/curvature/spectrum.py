"""Per-group Hessian spectrum summaries by Hessian-vector products: the top eigenvalue of each
diagonal block ``H_kk`` (Lanczos with full reorthogonalisation) and its trace (Hutchinson)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hidlr.curvature.directional import LossFn, as_groups, gradients, hvp
from hidlr.optim.options import check_count


@dataclass(frozen=True)
class Traces:
    """Hutchinson estimates of ``trace(H_kk)`` per group: ``mean`` (K,) and its standard error (K,)."""

    mean: torch.Tensor
    stderr: torch.Tensor


def _generator(seed: Any) -> torch.Generator:
    """A CPU generator seeded with ``seed``, an int in [0, 2**63)."""
    if check_count("seed", seed, 0) >= 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed}")
    return torch.Generator().manual_seed(int(seed))


def _flat(vs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1).to(torch.float64) for v in vs])


def _unflat(x: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for p in like:
        out.append(x[i : i + p.numel()].reshape(p.shape).to(dtype=p.dtype, device=p.device))
        i += p.numel()
    return out


def _block_operator(grads, groups, k):
    """``v -> H_kk v`` on flat float64 vectors of group k's size."""
    k_groups = len(groups)

    def apply(x: torch.Tensor) -> torch.Tensor:
        v = [_unflat(x, groups[k]) if j == k else [] for j in range(k_groups)]
        return _flat(hvp(grads, groups, v, wrt=[k])[0]).detach()

    return apply


def lanczos_top(apply, n: int, iters: int, generator: torch.Generator, device) -> float:
    """Largest eigenvalue of a symmetric operator on R^n from ``iters`` Lanczos steps (full
    reorthogonalisation; exact once ``iters >= n``)."""
    m = min(iters, n)
    q = torch.randn(n, generator=generator, dtype=torch.float64).to(device)
    q = q / q.norm()
    basis = [q]
    alpha, beta = [], []
    for j in range(m):
        w = apply(basis[j])
        alpha.append(float(w @ basis[j]))
        for v in basis:  # full reorthogonalisation (twice is enough)
            w = w - (w @ v) * v
        for v in basis:
            w = w - (w @ v) * v
        nb = float(w.norm())
        if j == m - 1 or nb <= 1e-12 * max(1.0, max(abs(a) for a in alpha)):
            break
        beta.append(nb)
        basis.append(w / nb)
    t = torch.diag(torch.tensor(alpha, dtype=torch.float64))
    if len(alpha) > 1:
        off = torch.tensor(beta[: len(alpha) - 1], dtype=torch.float64)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return float(torch.linalg.eigvalsh(t)[-1])


def top_eigenvalues(loss_fn: LossFn, groups: Sequence[Any], iters: int = 30, seed: int = 0) -> torch.Tensor:
    """Largest (algebraic) eigenvalue of each diagonal Hessian block ``H_kk``; (K,) float64.

    ``iters`` Lanczos steps per group (each one Hessian-vector product); exact when ``iters`` is at
    least the group's size, otherwise a lower bound that converges fast for well-separated tops.
    """
    iters = check_count("iters", iters, 1)
    gen = _generator(seed)
    gs = as_groups(groups)
    _, grads = gradients(loss_fn, gs)
    out = []
    for k, ps in enumerate(gs):
        n = sum(p.numel() for p in ps)
        out.append(lanczos_top(_block_operator(grads, gs, k), n, iters, gen, ps[0].device))
    return torch.tensor(out, dtype=torch.float64)


def hutchinson_traces(loss_fn: LossFn, groups: Sequence[Any], samples: int = 32, seed: int = 0) -> Traces:
    """Hutchinson estimates of ``trace(H_kk)`` per group from ``samples`` Rademacher vectors
    (exact for a diagonal block); each sample costs one Hessian-vector product per group."""
    samples = check_count("samples", samples, 1)
    gen = _generator(seed)
    gs = as_groups(groups)
    _, grads = gradients(loss_fn, gs)
    means, errs = [], []
    for k, ps in enumerate(gs):
        n = sum(p.numel() for p in ps)
        apply = _block_operator(grads, gs, k)
        vals = []
        for _ in range(samples):
            z = (torch.randint(0, 2, (n,), generator=gen, dtype=torch.float64) * 2 - 1).to(ps[0].device)
            vals.append(float(z @ apply(z)))
        v = torch.tensor(vals, dtype=torch.float64)
        means.append(float(v.mean()))
        errs.append(float(v.std() / math.sqrt(samples)) if samples > 1 else float("nan"))
    return Traces(torch.tensor(means, dtype=torch.float64), torch.tensor(errs, dtype=torch.float64))
