"""A copy of a torch optimizer's state, kept in host memory, to undo a step that failed midway."""

from __future__ import annotations

import copy
from typing import Any

import torch

Snapshot = tuple[dict[Any, dict[str, Any]], list[dict[str, Any]]]


def snapshot(optimizer: torch.optim.Optimizer) -> Snapshot:
    """Copy the per-parameter state (tensors to host memory) and the group settings (not params)."""
    cpu = torch.device("cpu")
    state = {p: {k: (v.to(cpu, copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v))
                 for k, v in s.items()} for p, s in optimizer.state.items()}
    groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
              for g in optimizer.param_groups]
    return state, groups


def restore(optimizer: torch.optim.Optimizer, snap: Snapshot) -> None:
    """Put a :func:`snapshot` back, each tensor on the device its live counterpart is on."""
    state, groups = snap
    live = optimizer.state
    restored = {}
    for p, s in state.items():
        restored[p] = {k: (v.to(live[p][k].device) if isinstance(v, torch.Tensor)
                           and isinstance(live.get(p, {}).get(k), torch.Tensor) else v)
                       for k, v in s.items()}
    live.clear()
    live.update(restored)
    for g, saved in zip(optimizer.param_groups, groups):
        g.update(saved)
