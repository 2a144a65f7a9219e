"""Per-step time and memory overhead of HiDLR(Adam) against Adam, measured side by side.

Workload: an MLP of about one million parameters (256-1024-512-256-10) on random data, one
Hi-DLR group per layer, HiDLR at its default settings (and at ``every=4`` for comparison).
Time: each repeat trains every method from the same initial weights for ``steps`` steps (forward,
backward, step; probes on a second batch), in interleaved order; the figure is the mean step
time of a run, summarised by the median over repeats, and the ratio to Adam is taken per repeat.
Memory: each method runs in a fresh subprocess and reports its peak resident memory (CPU) or
peak allocated device memory (CUDA); the overhead is the difference to Adam's, in copies of the
parameters.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hidlr import HiDLR, groups
from hidlr.bench import harness

METHODS: dict[str, dict[str, Any] | None] = {
    "adam": None,
    "hidlr-default": {},
    "hidlr-every4": {"every": 4},
    "hidlr-default-no-rollback": {"rollback": False},
}


def make_model(width: int = 1024, seed: int = 0) -> nn.Sequential:
    """256 -> width -> width/2 -> width/4 -> 10 MLP (about 0.95M parameters at width 1024)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU(),
                         nn.Linear(width // 2, width // 4), nn.ReLU(), nn.Linear(width // 4, 10))


def _run(method: str, steps: int, batch: int, width: int, device: str, seed: int = 0) -> float:
    """Train ``steps`` steps; returns the mean seconds per step."""
    model = make_model(width, seed).to(device)
    loss_fn = nn.CrossEntropyLoss()
    base = torch.optim.Adam(groups.by_layer(model), lr=1e-3)
    cfg = METHODS[method]
    opt = base if cfg is None else HiDLR(base, **cfg)
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(8, batch, 256, generator=gen).to(device)
    ys = torch.randint(10, (8, batch), generator=gen).to(device)
    sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    for t in range(steps):
        x, y = xs[t % 8], ys[t % 8]
        xp, yp = xs[(t + 1) % 8], ys[(t + 1) % 8]
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        if cfg is None:
            opt.step()
        else:
            opt.step(probe=lambda: loss_fn(model(xp), yp))
    sync()
    return (time.perf_counter() - start) / steps


def _peak_memory_child(method: str, steps: int, batch: int, width: int, device: str) -> None:
    """Subprocess body: run, then print the peak memory (bytes) above what the process held before
    training started, and the parameter bytes, as JSON."""
    n_bytes = sum(p.numel() * p.element_size() for p in make_model(width).parameters())
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _run(method, steps, batch, width, device)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"peak": peak - before, "param_bytes": n_bytes}))


def measure_memory(method: str, steps: int, batch: int, width: int, device: str) -> dict[str, int]:
    code = ("import sys; from hidlr.bench.overhead import _peak_memory_child as f; "
            f"f({method!r}, {steps}, {batch}, {width}, {device!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(out_dir: Path, repeats: int = 5, steps: int = 200, batch: int = 128, width: int = 1024,
        device: str | None = None, threads: int | None = None, progress: bool = True,
        memory_width: int = 4096, memory: bool = True) -> dict[str, Any]:
    """Measure and write ``overhead.json`` and ``overhead.md`` into ``out_dir``; returns the results.

    Memory is measured on a wider MLP (``memory_width``; about 11.5M parameters at 4096) so that a
    copy of the parameters stands well above the allocator's noise (``memory=False`` skips it)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if threads:
        torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.numel() for p in make_model(width).parameters())
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    with harness.progress("overhead", repeats * len(METHODS) + len(METHODS) * memory, enabled=progress) as tick:
        _run("hidlr-default", 20, batch, width, device)  # warm-up
        for r in range(repeats):
            order = list(METHODS) if r % 2 == 0 else list(reversed(METHODS))
            for m in order:
                times[m].append(_run(m, steps, batch, width, device))
                tick(m)
        peaks = {}
        for m in METHODS if memory else []:
            peaks[m] = measure_memory(m, 40, batch, memory_width, device)
            tick(f"memory {m}")
    ratios = {m: statistics.median(t / a for t, a in zip(times[m], times["adam"])) for m in METHODS}
    param_bytes = peaks["adam"]["param_bytes"] if memory else 0
    extra = {m: (peaks[m]["peak"] - peaks["adam"]["peak"]) / param_bytes if memory else None
             for m in METHODS}
    result = {
        "workload": {"model": f"MLP 256-{width}-{width // 2}-{width // 4}-10", "params": n_params,
                     "batch": batch, "steps": steps, "repeats": repeats, "groups": "one per layer (4)"},
        "machine": {**harness.run_metadata(), "device": device, "threads": torch.get_num_threads()},
        "methods": METHODS,
        "step_seconds": times,
        "median_step_seconds": {m: statistics.median(v) for m, v in times.items()},
        "time_ratio_vs_adam": ratios,
        "peak_memory_bytes": {m: peaks[m]["peak"] for m in peaks},
        "extra_memory_param_copies": extra,
        "memory_workload": {"model": f"MLP 256-{memory_width}-{memory_width // 2}-{memory_width // 4}-10",
                            "params": param_bytes // 4, "steps": 40},
    }
    harness.write_json(out_dir / "overhead.json", result, indent=2)
    lines = ["# HiDLR(Adam) overhead against Adam\n",
             f"{result['workload']['model']} ({n_params:,} parameters), batch {batch}, {steps} steps "
             f"x {repeats} repeats, {device}, {torch.get_num_threads()} threads, torch {torch.__version__}.\n",
             "| method | median s/step | time ratio vs Adam (median of per-repeat ratios) "
             "| extra peak memory (parameter copies) |",
             "|---|---|---|---|"]
    for m in METHODS:
        mem = f"{extra[m]:+.2f}" if memory else "not measured"
        lines.append(f"| {m} | {result['median_step_seconds'][m]:.5f} | {ratios[m]:.3f} | {mem} |")
    if memory:
        lines.append(f"\nMemory: in a fresh process per method, the peak resident set (CPU) or peak allocated "
                 f"device memory (CUDA) above what the process held before training, on "
                     f"{result['memory_workload']['model']} ({param_bytes // 4:,} parameters, 40 steps "
                     "covering 5 refreshes), minus Adam's, in copies of the parameters.")
    (out_dir / "overhead.md").write_text("\n".join(lines) + "\n")
    return result
