"""What the CUDA checks share: the registry (:data:`CHECKS`, :func:`check`), the failure they raise,
and the small model, data and training loop they use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hidlr import HiDLR

#: (name, check, whether it needs CUDA to mean anything) in the order the checks run
CHECKS: list[tuple[str, Callable[[str], dict[str, Any]], bool]] = []


def check(fn: Callable[[str], dict[str, Any]] | None = None, *, cuda_only: bool = False) -> Any:
    """Register a check (``@check``, or ``@check(cuda_only=True)`` for one that compares the device
    with the CPU or counts CUDA synchronisations: on the CPU it would compare the CPU with itself)."""

    def register(f: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
        CHECKS.append((f.__name__, f, cuda_only))
        return f

    return register if fn is None else register(fn)


class Failed(AssertionError):
    pass


def need(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def mlp(seed: int, dtype: torch.dtype = torch.float32, width: int = 64) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)).to(
        dtype
    )


def groups_of(model: nn.Sequential) -> list[dict[str, Any]]:
    return [{"params": model[i].parameters(), "name": f"layer{i}"} for i in (0, 2, 4)]


def data(device: str, dtype: torch.dtype = torch.float32, n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randn(128, 8, generator=gen, dtype=torch.float64)
        y = (x[:, :1] * x[:, 1:2]).sin() + 0.1 * torch.randn(128, 1, generator=gen, dtype=torch.float64)
        out.append((x.to(device, dtype), y.to(device, dtype)))
    return out


def mse_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The probe ``lambda: mse(model(x), y)``, bound now."""
    return lambda: nn.functional.mse_loss(model(x), y)


def same_batch_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
    """``n`` steps on one batch; a HiDLR probes that batch too."""
    for _ in range(n):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        if isinstance(opt, HiDLR):
            opt.step(probe=mse_probe(model, x, y))
        else:
            opt.step()


def train(model: nn.Module, opt: HiDLR, batches, steps: int) -> list[float]:
    losses = []
    for t in range(steps):
        x, y = batches[t % len(batches)]
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        xp, yp = batches[(t + 1) % len(batches)]
        opt.step(probe=mse_probe(model, xp, yp))
        losses.append(float(loss.detach()))
    return losses


def tensors_of_state(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]


def failing_probe(probe: Callable[[], torch.Tensor], at_call: int) -> Callable[[], torch.Tensor]:
    """``probe`` that raises KeyError on its ``at_call``-th call."""
    calls = [0]

    def call() -> torch.Tensor:
        calls[0] += 1
        if calls[0] == at_call:
            raise KeyError("data ran out")
        return probe()

    return call
