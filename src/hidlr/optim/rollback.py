"""A copy of a torch optimizer's state and of some weights, kept in host memory, to undo a step that
failed midway bitwise."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Snapshot:
    """Per-parameter optimizer state, group settings (without params) and weights, all copied."""

    state: dict[Any, dict[str, Any]]
    groups: list[dict[str, Any]]
    weights: list[tuple[torch.Tensor, torch.Tensor]]


def _host_copy(v: Any) -> Any:
    return v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v)


def snapshot(optimizer: torch.optim.Optimizer, weights: Sequence[torch.Tensor] = ()) -> Snapshot:
    """Copy the optimizer's per-parameter state and ``weights`` to host memory, and the group
    settings. Costs one copy of ``weights`` plus one of the state (two parameter copies for Adam)."""
    state = {p: {k: _host_copy(v) for k, v in s.items()} for p, s in optimizer.state.items()}
    groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return Snapshot(state, groups, [(w, _host_copy(w)) for w in weights])


def restore(optimizer: torch.optim.Optimizer, snap: Snapshot) -> None:
    """Put a :func:`snapshot` back bitwise: tensors copied into the live ones (which keep their
    identity and device), state that did not exist then removed, group settings reset."""
    live = optimizer.state
    for p in [p for p in live if p not in snap.state]:
        del live[p]
    for p, saved in snap.state.items():
        now = live.setdefault(p, {})
        for k in [k for k in now if k not in saved]:
            del now[k]
        for k, v in saved.items():
            cur = now.get(k)
            if (
                isinstance(v, torch.Tensor)
                and isinstance(cur, torch.Tensor)
                and cur.shape == v.shape
                and cur.dtype == v.dtype
            ):
                cur.copy_(v)
            else:
                now[k] = (
                    (v.to(cur.device, copy=True) if isinstance(cur, torch.Tensor) else v.clone())
                    if isinstance(v, torch.Tensor)
                    else copy.deepcopy(v)
                )
    for g, saved_group in zip(optimizer.param_groups, snap.groups):
        g.update(copy.deepcopy(saved_group))
    with torch.no_grad():
        for w, v in snap.weights:
            w.copy_(v)
