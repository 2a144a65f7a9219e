"""Checks that refuse bad input before anything changes: duplicate parameters, bad rates, non-finite
gradients, and probe return values that are not a finite scalar loss."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch


class ProbeError(RuntimeError):
    """A probe closure returned something that is not a finite scalar loss."""


def group_name(group: dict[str, Any], k: int) -> str:
    return str(group.get("name", k))


def check_unique_params(groups: Sequence[dict[str, Any]], new: Iterable[torch.Tensor] | None = None) -> None:
    """Refuse a parameter that appears twice in a group, in two groups, or (``new``: the parameters
    of a group about to be added) in the new group and an existing one. Every move would otherwise
    be applied to it twice."""
    owner: dict[int, int] = {}
    for k, g in enumerate(groups):
        for p in g["params"]:
            if id(p) in owner:
                where = f"twice in param group {k}" if owner[id(p)] == k else f"in param groups {owner[id(p)]} and {k}"
                raise ValueError(
                    f"a parameter of shape {tuple(p.shape)} appears {where}; each parameter "
                    "may belong to one group, once"
                )
            owner[id(p)] = k
    seen: set[int] = set()
    for p in new or ():
        if id(p) in seen:
            raise ValueError(f"a parameter of shape {tuple(p.shape)} appears twice in the new param group")
        if id(p) in owner:
            raise ValueError(
                f"a parameter of shape {tuple(p.shape)} of the new param group is already in param group {owner[id(p)]}"
            )
        seen.add(id(p))


def check_rates(rates: Sequence[float], groups: Sequence[dict[str, Any]], step: int) -> None:
    """Refuse a negative or non-finite applied rate (set by hand or by a scheduler): applying it
    would be gradient ascent or destroy the weights."""
    for k, r in enumerate(rates):
        if not math.isfinite(r) or r < 0:
            kind = "negative" if r < 0 else "non-finite"
            raise ValueError(
                f"param group {group_name(groups[k], k)!r} has a {kind} rate {r} at step {step} "
                "(group['lr'] times the estimate over group['initial_lr']); set a rate >= 0 "
                "(0 freezes the group); nothing was changed"
            )


def _values(g: torch.Tensor) -> torch.Tensor:
    """The stored values of a gradient: the non-zeros of a sparse one, the tensor itself otherwise."""
    if g.layout == torch.sparse_coo:
        return g.coalesce().values()
    if g.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        return g.values()
    return g


def all_finite(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One bool tensor (no host sync): False when some entry of some tensor is NaN or infinite.

    One fused 2-norm per device and dtype (``torch._foreach_norm``): NaN and inf propagate into
    the norm. A finite tensor whose norm overflows also gives False, so a False is confirmed with
    :func:`first_non_finite`. Sparse tensors contribute their stored values.
    """
    by_device: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        v = _values(t)
        if v.numel():
            by_device.setdefault((v.device, v.dtype), []).append(v)
    flags = [torch.isfinite(torch.stack(torch._foreach_norm(vs))).all() for vs in by_device.values()]
    if not flags:
        return torch.tensor(True)
    if len({f.device for f in flags}) > 1:
        flags = [f.cpu() for f in flags]
    return torch.stack(flags).all()


def first_non_finite(params: Sequence[Sequence[torch.Tensor]]) -> tuple[int, int] | None:
    """(group, index) of the first parameter whose gradient has a non-finite entry (the slow path
    after :func:`all_finite` said so)."""
    for k, ps in enumerate(params):
        for i, p in enumerate(ps):
            if not bool(torch.isfinite(_values(p.grad)).all()):
                return k, i
    return None


def probe_value(value: Any) -> torch.Tensor:
    """A probe's return value as a 0-d float64 tensor; :class:`ProbeError` naming what came back when
    it is not a real scalar (None, str, bool, complex, several elements, a list, ...)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ProbeError(f"probe must return a scalar loss, got a tensor of shape {tuple(value.shape)}")
        if value.is_complex() or value.dtype == torch.bool:
            raise ProbeError(f"probe must return a real scalar loss, got a {value.dtype} tensor")
        return value.detach().reshape(()).to(torch.float64)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ProbeError(
            f"probe must return a scalar loss (a tensor or a real number), got {type(value).__name__} {value!r:.60}"
        )
    return torch.tensor(float(value), dtype=torch.float64)
