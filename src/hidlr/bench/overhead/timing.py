"""The overhead workload and its timed runs: a deep MLP split into K param groups, trained by Adam or
HiDLR(Adam), every step timed on its own.

Workload: a 32-layer MLP of width 128 (64 parameter tensors, about 0.5M parameters), batch 128,
regression on random data (8 fixed batches in turn; the probe evaluates the next batch). The 64
tensors are split into K groups of consecutive tensors (K divides 64).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hidlr import HiDLR

WIDTH, DEPTH = 128, 32


def deep_mlp(depth: int = DEPTH, width: int = WIDTH, seed: int = 0) -> nn.Sequential:
    """``depth`` Linear(width, width) layers with ReLUs between: 2 * depth tensors."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def split_groups(model: nn.Module, k: int) -> list[dict[str, Any]]:
    """The model's tensors in ``k`` groups of consecutive tensors (``k`` must divide their number)."""
    params = list(model.parameters())
    if k < 1 or len(params) % k:
        raise ValueError(f"k must divide the number of tensors ({len(params)}), got {k}")
    per = len(params) // k
    return [{"params": params[i * per : (i + 1) * per], "name": f"g{i}"} for i in range(k)]


def _trainer(
    k: int,
    options: dict[str, Any] | None,
    batch: int,
    device: str,
    width: int,
    seed: int,
    hook: Callable[[], None] | None = None,
    rates: Sequence[Sequence[float]] | None = None,
) -> Callable[[int], tuple[float, bool]]:
    """A closure that takes training step ``t`` and returns (wall seconds, this thread's CPU seconds,
    whether it refreshed, seconds of the ``opt.step`` call, seconds inside the base Adam's own step).
    The last two (CUDA: without a sync, so only the host's side) split HiDLR's step into the
    wrapper's work and the base step's.
    ``hook`` (for memory accounting) is called after every step and at the start of every probe.
    ``rates`` (Adam only): per step, the rate of each group (set before the step, outside the timed
    span), e.g. a HiDLR run's :func:`applied_rates`."""
    model = deep_mlp(width=width, seed=seed).to(device)
    loss_fn = nn.MSELoss()
    base = torch.optim.Adam(split_groups(model, k), lr=1e-3)
    opt = base if options is None else HiDLR(base, **options)
    inner = [0.0]
    if options is not None:
        base_step = base.step

        def timed_base_step(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return base_step(*args, **kwargs)
            finally:
                inner[0] += time.perf_counter() - start

        base.step = timed_base_step  # type: ignore[method-assign]
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(8, batch, width, generator=gen).to(device)
    ys = torch.randn(8, batch, width, generator=gen).to(device)
    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step(t: int) -> tuple[float, float, bool, float, float]:
        x, y = xs[t % 8], ys[t % 8]
        xp, yp = xs[(t + 1) % 8], ys[(t + 1) % 8]
        if rates is not None:
            for group, rate in zip(base.param_groups, rates[t]):
                group["lr"] = rate
        sync()
        start, start_cpu = time.perf_counter(), time.thread_time()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        refresh = isinstance(opt, HiDLR) and opt.is_refresh_step()
        inner[0] = 0.0
        step_start = time.perf_counter()
        if isinstance(opt, HiDLR):

            def probe() -> torch.Tensor:
                if hook is not None:
                    hook()
                return loss_fn(model(xp), yp)

            opt.step(probe=probe)
        else:
            opt.step()
        step_seconds = time.perf_counter() - step_start
        sync()
        seconds, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        if hook is not None:
            hook()
        return seconds, cpu, refresh, step_seconds, inner[0] if isinstance(opt, HiDLR) else step_seconds

    step.optimizer = opt  # type: ignore[attr-defined]
    return step


def _result(timed: list[tuple[float, float, bool, float, float]], opt: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seconds": [t[0] for t in timed],
        "cpu_seconds": [t[1] for t in timed],
        "refreshed": [t[2] for t in timed],
        "step_seconds": [t[3] for t in timed],
        "base_step_seconds": [t[4] for t in timed],
    }
    if isinstance(opt, HiDLR):
        out["refreshes"] = opt.refresh_count
        out["probe_forwards"] = opt._probe_forwards
    return out


def timed_run(
    k: int,
    options: dict[str, Any] | None,
    steps: int,
    batch: int = 128,
    device: str = "cpu",
    width: int = WIDTH,
    seed: int = 0,
    hook: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train ``steps`` steps with Adam (``options`` None) or HiDLR(Adam, **options) on K groups.

    Returns per-step wall and thread CPU seconds (forward, backward and step; a CUDA sync closes
    each step), whether each step refreshed, and for HiDLR the refresh count and probe forward
    passes. ``hook`` is
    called after every step and at the start of every probe call (outside the timed span only
    for the former).
    """
    step = _trainer(k, options, batch, device, width, seed, hook)
    return _result([step(t) for t in range(steps)], step.optimizer)  # type: ignore[attr-defined]


def applied_rates(
    k: int, options: dict[str, Any], steps: int, batch: int, device: str, width: int, seed: int = 0
) -> list[list[float]]:
    """The rate per group that each step of an (untimed) HiDLR(Adam, **options) run applied: its
    :attr:`~hidlr.HiDLR.lrs` after the step (no scheduler and no step budget here, so after a refresh
    these are the rates whose weights that step set). A deterministic run repeats them step for step."""
    step = _trainer(k, options, batch, device, width, seed)
    out = []
    for t in range(steps):
        step(t)
        out.append(step.optimizer.lrs)  # type: ignore[attr-defined]
    return out


def paired_run(
    k: int,
    options: dict[str, Any],
    steps: int,
    batch: int = 128,
    device: str = "cpu",
    width: int = WIDTH,
    seed: int = 0,
    rates: Sequence[Sequence[float]] | None = None,
) -> tuple[dict[str, Any], ...]:
    """Adam and HiDLR(Adam, **options) trained in lockstep, step t of one right after step t of the
    other (the order rotating), so that the load of a shared machine hits both alike at the
    scale of one step. With ``rates`` (:func:`applied_rates` of the same HiDLR run), a third run in
    the lockstep: Adam stepping at HiDLR's rates, on HiDLR's trajectory (Adam's own step costs more
    or less with the weights it meets, so this pair isolates HiDLR's work). Returns (HiDLR's
    :func:`timed_run`-like result, Adam's[, Adam's at HiDLR's rates])."""
    runs = {
        "hidlr": _trainer(k, options, batch, device, width, seed),
        "adam": _trainer(k, None, batch, device, width, seed),
    }
    if rates is not None:
        runs["same-rates"] = _trainer(k, None, batch, device, width, seed, rates=rates)
    names = list(runs)
    timed: dict[str, list[tuple[float, float, bool, float, float]]] = {n: [] for n in names}
    for t in range(steps):
        shift = t % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            timed[name].append(runs[name](t))
    return tuple(_result(timed[n], runs[n].optimizer) for n in names)  # type: ignore[attr-defined]


def ratios(hidlr_run: dict[str, Any], adam_run: dict[str, Any]) -> dict[str, float]:
    """Time ratios of a HiDLR run to an Adam run of the same steps: over all steps (total time),
    and over the steps that did not refresh (their total against Adam's on the same steps), in wall
    time and (keys ending ``_cpu``, when recorded) in the CPU time of the training thread."""
    r = hidlr_run["refreshed"]
    plain = [i for i in range(len(r)) if not r[i]]
    out = {}
    for key, suffix in (("seconds", ""), ("cpu_seconds", "_cpu")):
        if key not in hidlr_run or key not in adam_run:
            continue
        h, a = hidlr_run[key], adam_run[key]
        out["all_steps" + suffix] = sum(h) / sum(a)
        out["non_refresh_steps" + suffix] = (
            sum(h[i] for i in plain) / sum(a[i] for i in plain) if plain else float("nan")
        )
    if plain and "base_step_seconds" in hidlr_run and "base_step_seconds" in adam_run:
        h_step, h_base = hidlr_run["step_seconds"], hidlr_run["base_step_seconds"]
        adam_total, adam_base = adam_run["seconds"], adam_run["base_step_seconds"]
        # HiDLR's own work on a non-refresh step (its step minus the base Adam step inside it),
        # as a ratio to Adam's whole step; and the base step inside HiDLR against bare Adam's step
        out["wrapper_non_refresh_steps"] = 1 + sum(h_step[i] - h_base[i] for i in plain) / sum(
            adam_total[i] for i in plain
        )
        out["base_step_non_refresh_steps"] = sum(h_base[i] for i in plain) / sum(adam_base[i] for i in plain)
    return out
