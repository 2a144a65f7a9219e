"""Exact curvature along given directions, per parameter group, by Hessian-vector products.

For groups ``w = [w_1 .. w_K]`` and directions ``d = [d_1 .. d_K]`` (one tensor per parameter):

    b_k  = G_k . d_k              (G: gradient of the loss)
    A_kl = d_k^T H_kl d_l         (H: Hessian; A is K x K, symmetric)

are the exact coefficients of the second-order model ``L(w - eta*d) ~ L(w) - b^T eta + eta^T A eta / 2``
that Hi-DLR's forward probes estimate. Computed with one gradient (kept differentiable) and K
Hessian-vector products (double backward); no Hessian is ever formed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

LossFn = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Directional:
    """Exact quadratic model along directions. ``loss``: L(w); ``b`` (K,); ``A`` (K, K); float64.

    ``newton_diag`` (K,): the per-group Newton rates ``b_k / A_kk`` (NaN where ``A_kk <= 0``);
    ``newton_one``: the one-group (GeN) rate along the joint direction, ``sum(b) / sum(A)`` (NaN
    where not convex).
    """

    loss: float
    b: torch.Tensor
    A: torch.Tensor

    @property
    def newton_diag(self) -> torch.Tensor:
        a = torch.diagonal(self.A)
        return torch.where(a > 0, self.b / a, torch.full_like(a, float("nan")))

    @property
    def newton_one(self) -> float:
        a = float(self.A.sum())
        return float(self.b.sum()) / a if a > 0 else float("nan")


def as_groups(groups: Sequence[Any]) -> list[list[torch.Tensor]]:
    """Parameter groups as lists of tensors: accepts optimizer ``param_groups`` (dicts with
    ``"params"``), lists of tensors, or single tensors."""
    if isinstance(groups, torch.nn.Module):
        raise TypeError(
            "groups must be parameter groups, not an nn.Module: pass e.g. list(model.parameters()) (one group "
            "per tensor) or hidlr.groups.by_layer(model)"
        )
    if isinstance(groups, (torch.Tensor, dict)):
        raise TypeError("groups must be a sequence of groups (dicts with 'params', tensor lists or tensors)")
    out = []
    for k, g in enumerate(groups):
        params = g["params"] if isinstance(g, dict) else g
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if not params or not all(isinstance(p, torch.Tensor) for p in params):
            raise TypeError(f"groups[{k}] must hold at least one tensor")
        if not all(p.requires_grad for p in params):
            raise ValueError(f"groups[{k}] holds a tensor that does not require grad")
        out.append(params)
    if not out:
        raise ValueError("groups is empty")
    return out


def check_directions(
    groups: list[list[torch.Tensor]], directions: Sequence[Sequence[torch.Tensor]]
) -> list[list[torch.Tensor]]:
    """Directions shaped like the groups, with finite entries, cast to each parameter's dtype and device."""
    if isinstance(directions, (torch.Tensor, str)) or not isinstance(directions, Sequence):
        raise TypeError(f"directions must be a list (per group) of lists of tensors, got {type(directions).__name__}")
    if len(directions) != len(groups):
        raise ValueError(f"directions has {len(directions)} groups, groups has {len(groups)}")
    out = []
    for k, (ps, ds) in enumerate(zip(groups, directions)):
        if not isinstance(ds, (torch.Tensor, Sequence)) or isinstance(ds, str):
            raise TypeError(f"directions[{k}] must be a tensor or a list of tensors, got {type(ds).__name__}")
        ds = [ds] if isinstance(ds, torch.Tensor) else list(ds)
        for i, d in enumerate(ds):
            if not isinstance(d, torch.Tensor):
                raise TypeError(f"directions[{k}][{i}] must be a torch.Tensor, got {type(d).__name__}")
        if len(ds) != len(ps) or any(d.shape != p.shape for p, d in zip(ps, ds)):
            raise ValueError(
                f"directions[{k}] must match the shapes of groups[{k}]: "
                f"{[tuple(p.shape) for p in ps]}, got {[tuple(d.shape) for d in ds]}"
            )
        for i, d in enumerate(ds):
            if d.is_floating_point() and not bool(torch.isfinite(d).all()):
                raise ValueError(f"directions[{k}][{i}] holds NaN or infinite entries")
        out.append([d.detach().to(dtype=p.dtype, device=p.device) for p, d in zip(ps, ds)])
    return out


def scalar_loss(loss_fn: LossFn) -> torch.Tensor:
    """Call ``loss_fn`` with gradients enabled and check that it returns a finite scalar tensor."""
    with torch.enable_grad():
        loss = loss_fn()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return a scalar tensor, got {type(loss).__name__}"
            f"{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}"
        )
    if not loss.requires_grad:
        raise ValueError("loss_fn returned a loss that does not depend on the groups' parameters")
    if not bool(torch.isfinite(loss.detach()).all()):
        raise ValueError(
            f"loss_fn returned a non-finite loss ({float(loss.detach().reshape(()))}) at the current weights"
        )
    return loss.reshape(())


def _dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(
        ((x.to(torch.float64) * y.to(torch.float64)).sum() for x, y in zip(xs, ys)),
        torch.zeros((), dtype=torch.float64, device=xs[0].device),
    )


def gradients(loss_fn: LossFn, groups: list[list[torch.Tensor]]) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """The loss and its gradient per group, kept differentiable for Hessian-vector products."""
    loss = scalar_loss(loss_fn)
    flat = [p for ps in groups for p in ps]
    grads = torch.autograd.grad(loss, flat, create_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        raise ValueError("loss_fn returned a loss that does not depend on the groups' parameters")
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(flat, grads)]
    out, i = [], 0
    for ps in groups:
        out.append(grads[i : i + len(ps)])
        i += len(ps)
    return loss, out


def hvp(
    grads: list[list[torch.Tensor]],
    groups: list[list[torch.Tensor]],
    vectors: list[list[torch.Tensor]],
    wrt: Sequence[int] | None = None,
) -> list[list[torch.Tensor]]:
    """``H v`` restricted to the groups ``wrt`` (all when None), for a vector ``v`` given per group
    (groups absent from ``v`` count as zero: pass an empty list). ``grads`` from :func:`gradients`."""
    pairs = [(g, v) for gs, vs in zip(grads, vectors) for g, v in zip(gs, vs)]
    if not pairs:
        raise ValueError("the vector is zero in every group")
    inner = _dot([g for g, _ in pairs], [v for _, v in pairs])
    wrt = list(range(len(groups))) if wrt is None else list(wrt)
    flat = [p for k in wrt for p in groups[k]]
    if inner.requires_grad:
        hv = torch.autograd.grad(inner, flat, retain_graph=True, allow_unused=True)
    else:  # the gradient is constant in the weights (a linear loss, a group the loss ignores): H v = 0
        hv = (None,) * len(flat)
    hv = [torch.zeros_like(p) if h is None else h for p, h in zip(flat, hv)]
    out, i = [], 0
    for k in wrt:
        out.append(list(hv[i : i + len(groups[k])]))
        i += len(groups[k])
    return out


def along(loss_fn: LossFn, groups: Sequence[Any], directions: Sequence[Sequence[torch.Tensor]]) -> Directional:
    """Exact ``b`` (K,) and ``A`` (K, K) along ``directions`` at the current weights.

    Args:
        loss_fn: computes the scalar loss from the current parameters (gradients enabled inside).
        groups: K parameter groups (optimizer ``param_groups`` or lists of tensors).
        directions: per group, one tensor per parameter (the update direction ``d_k``; the step is
            ``w_k - eta_k d_k``).

    Cost: one differentiable backward and K Hessian-vector products. Arithmetic of the dot products
    is float64; the derivatives are in the parameters' dtype (see :func:`hidlr.curvature.in_float64`).
    """
    gs = as_groups(groups)
    ds = check_directions(gs, directions)
    loss, grads = gradients(loss_fn, gs)
    k_groups = len(gs)
    b = torch.stack([_dot(grads[k], ds[k]) for k in range(k_groups)]).detach().cpu()
    a = torch.zeros(k_groups, k_groups, dtype=torch.float64)
    for col in range(k_groups):
        v = [ds[k] if k == col else [] for k in range(k_groups)]
        hd = hvp(grads, gs, v)
        for row in range(k_groups):
            a[row, col] = float(_dot(ds[row], hd[row]))
    a = 0.5 * (a + a.T)
    return Directional(float(loss.detach()), b, a)
