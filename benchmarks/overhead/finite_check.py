"""What the default finiteness check costs on a step that does not refresh, and what the other ways
to check a step's gradients would cost (issue 11's 1.02x goal for such steps).

The overhead benchmark's model (32 x Linear(128, 128), 64 tensors, batch 128, one thread): Adam,
and HiDLR(Adam) with ``check_finite`` True, ``"refresh"`` and False, never refreshing after the
first step, stepped in turn; medians over rounds of the per-round time ratio to Adam. Then the
check alone inside those steps, and ways of checking the same 64 gradients with the cache cold
(as after a backward pass), each also tried on a NaN, an inf and a -inf.

    .venv/bin/python benchmarks/overhead/finite_check.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import hidlr.optim.hidlr as engine
from hidlr import HiDLR


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(32) for m in (nn.Linear(128, 128), nn.Tanh())])


def step_ratios(rounds: int = 15, steps: int = 20) -> None:
    x, y = torch.randn(128, 128), torch.randn(128, 128)
    runs: dict[str, tuple[nn.Module, torch.optim.Optimizer]] = {}
    for name, check in (("adam", None), ("check_finite=True", True), ('"refresh"', "refresh"), ("False", False)):
        model = mlp()
        base = torch.optim.Adam(model.parameters(), lr=1e-4)
        runs[name] = (model, base if check is None else HiDLR(base, every=10**9, check_finite=check))

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step(probe=lambda: ((model(x) - y) ** 2).mean()) if isinstance(opt, HiDLR) else opt.step()

    for model, opt in runs.values():
        for _ in range(3):
            step(model, opt)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (model, opt) in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                step(model, opt)
            times[name].append((time.perf_counter() - start) / steps)
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, times["adam"]))
        print(f"{name:18s} {statistics.median(ts) * 1e3:6.2f} ms a step, {ratio:.4f}x Adam")
    spent: list[float] = []
    check = engine.check_gradients

    def timed(*args, **kwargs):
        start = time.perf_counter()
        check(*args, **kwargs)
        spent.append(time.perf_counter() - start)

    engine.check_gradients = timed
    model, opt = runs["check_finite=True"]
    for _ in range(200):
        step(model, opt)
    engine.check_gradients = check
    print(f"the check inside those steps: {statistics.median(spent) * 1e6:.0f} us")


def kernels(rounds: int = 40) -> None:
    torch.manual_seed(0)
    grads = [t for _ in range(32) for t in (torch.randn(128, 128), torch.randn(128))]
    one, evict = torch.ones(1), torch.randn(16 * 1024 * 1024)

    def amp() -> bool:  # the engine's check (hidlr.optim.guards.all_finite)
        found = torch.zeros(1)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, one)
        return not bool(found)

    ways: dict[str, Callable[[], bool]] = {
        "gradient scaler's fused check (the engine's)": amp,
        "a sum per tensor": lambda: bool(torch.stack([g.sum() for g in grads]).isfinite().all()),
        "_foreach_max": lambda: bool(torch.stack(torch._foreach_max(grads)).isfinite().all()),
        "a dot product per tensor": lambda: bool(
            torch.stack([torch.dot(g.view(-1), g.view(-1)) for g in grads]).isfinite().all()
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            evict.mul_(1.0)
            torch._foreach_add_(grads, 0.0)  # freshly written, as after a backward pass
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    kept = grads[3].clone()
    for name, way in ways.items():
        caught = []
        for bad in (float("nan"), float("inf"), -float("inf")):
            grads[3][5] = bad
            caught.append(not way())
            grads[3].copy_(kept)
        print(f"{name:46s} {statistics.median(times[name]) * 1e6:6.0f} us, catches NaN/inf/-inf: {caught}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    step_ratios()
    kernels()
