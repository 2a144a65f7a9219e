"""Checks that refuse bad input before anything changes: duplicate parameters, mixed ``maximize``
flags, bad rates (and reading rates that are tensors, in one transfer per device), non-finite
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


def probe_sign(groups: Sequence[dict[str, Any]]) -> float:
    """-1.0 when every param group has ``maximize=True`` (the base optimizer climbs the objective,
    and the probe returns that objective: Hi-DLR minimizes its negation), 1.0 when none has; a
    ``ValueError`` naming the groups when some do and some do not (one probe cannot serve both)."""
    flags = [bool(g.get("maximize", False)) for g in groups]
    if all(flags) and flags:
        return -1.0
    if not any(flags):
        return 1.0
    up = [group_name(g, k) for k, g in enumerate(groups) if flags[k]]
    down = [group_name(g, k) for k, g in enumerate(groups) if not flags[k]]
    raise ValueError(
        f"param groups {up} have maximize=True and {down} do not; one probe cannot be maximized and "
        "minimized at once: give every group the same maximize flag"
    )


def rates_as_floats(values: Sequence[Any]) -> list[float]:
    """Python floats of numbers and 0-d tensors; the tensors of one device come over in one transfer."""
    out = list(values)
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            by_device.setdefault(v.device, []).append((i, v))
    for items in by_device.values():
        host = torch.stack([v.detach().reshape(()).to(torch.float64) for _, v in items]).tolist()
        for (i, _), h in zip(items, host):
            out[i] = h
    return [float(v) for v in out]


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


_ONES: dict[torch.device, torch.Tensor] = {}  # the check's scale of 1, one per device (the op only reads it)


def _fused_all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """One fused pass over dense tensors of one device (the gradient scaler's check, at scale 1: it
    rewrites every entry as it was) and one host read. Raises when the op does not take them."""
    device = tensors[0].device
    one = _ONES.get(device)
    if one is None:
        one = _ONES[device] = torch.ones(1, device=device)
    found = torch.zeros(1, device=device)
    # the op bypasses autograd (no graph, no version bump), so gradients that need gradients
    # themselves are fine, and it is called outside no_grad, where it dispatches faster
    torch._amp_foreach_non_finite_check_and_unscale_(list(tensors), found, one)
    return not bool(found)


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """False when some entry of some tensor is NaN or infinite (sparse tensors: their stored values).

    Usually one fused pass over all the data and one host read
    (``torch._amp_foreach_non_finite_check_and_unscale_``, the check of the AMP gradient scaler).
    Tensors it does not take together (several devices or, on accelerators, several dtypes) are
    checked one fused pass per device and dtype; those it does not take at all (sparse, complex,
    broadcast views) one by one.
    """
    if not tensors:
        return True
    try:
        return _fused_all_finite(tensors)
    except (RuntimeError, NotImplementedError):
        pass
    groups: dict[tuple[torch.device, torch.dtype, torch.layout], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype, t.layout), []).append(t)
    for ts in groups.values():
        try:
            ok = _fused_all_finite(ts)
        except (RuntimeError, NotImplementedError):
            ok = all(bool(torch.isfinite(_values(t)).all()) for t in ts)
        if not ok:
            return False
    return True


def first_non_finite(groups: Sequence[dict[str, Any]]) -> tuple[int, int, torch.Tensor] | None:
    """(group, index among the group's parameters with a gradient, the parameter) of the first
    gradient with a non-finite entry (the slow path after :func:`all_finite` found one, to name it)."""
    for k, ps in enumerate(with_gradients(groups)[0]):
        for i, p in enumerate(ps):
            if not bool(torch.isfinite(_values(p.grad)).all()):
                return k, i, p
    return None


def with_gradients(groups: Sequence[dict[str, Any]]) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
    """Per group the parameters that have a gradient, and all those gradients in one list."""
    params: list[list[torch.Tensor]] = []
    grads: list[torch.Tensor] = []
    for g in groups:
        ps = []
        for p in g["params"]:
            grad = p.grad
            if grad is not None:
                ps.append(p)
                grads.append(grad)
        params.append(ps)
    return params, grads


def check_gradients(groups: Sequence[dict[str, Any]], step: int, grads: Sequence[torch.Tensor] | None = None) -> None:
    """Refuse non-finite gradients (``FloatingPointError`` naming the group, the parameter and
    ``step``): one fused check and one host read. ``grads``: all gradients of ``groups`` (from
    :func:`with_gradients`), gathered here when not given."""
    if grads is None:
        grads = [grad for g in groups for p in g["params"] if (grad := p.grad) is not None]
    if all_finite(grads):
        return
    bad = first_non_finite(groups)
    if bad is None:  # defensive: the two checks agree
        return
    k, i, param = bad
    raise FloatingPointError(
        f"non-finite gradient in param group {group_name(groups[k], k)!r}, parameter {i} "
        f"(shape {tuple(param.shape)}) at step {step}; nothing was changed"
    )


def probe_value(value: Any) -> torch.Tensor:
    """A probe's return value as a 0-d float64 tensor on the CPU (the fits are tiny host-side
    problems, and some accelerators have no float64); :class:`ProbeError` naming what came back when
    it is not a real scalar (None, str, bool, complex, several elements, a list, ...)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ProbeError(f"probe must return a scalar loss, got a tensor of shape {tuple(value.shape)}")
        if value.is_complex() or value.dtype == torch.bool:
            raise ProbeError(f"probe must return a real scalar loss, got a {value.dtype} tensor")
        return value.detach().reshape(()).cpu().to(torch.float64)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ProbeError(
            f"probe must return a scalar loss (a tensor or a real number), got {type(value).__name__} {value!r:.60}"
        )
    return torch.tensor(float(value), dtype=torch.float64)
