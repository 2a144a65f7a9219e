"""Peak memory of a short training run, each in a fresh process, in copies of the parameters.

The child trains the overhead workload (:mod:`hidlr.bench.overhead.timing`) at a larger width so
that a copy of the parameters stands well above the allocator's noise, and reports the peak
resident set (CPU) or peak allocated device memory (CUDA) above what it held before training.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any

import torch

from hidlr.bench.overhead.timing import deep_mlp, timed_run


def peak_memory_child(k: int, options: dict[str, Any] | None, steps: int, width: int, device: str) -> None:
    """Subprocess body: train, then print the peak memory above the start and the parameter bytes."""
    n_bytes = sum(p.numel() * p.element_size() for p in deep_mlp(width=width).parameters())
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    timed_run(k, options, steps, batch=32, device=device, width=width)
    peak = (
        torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    print(json.dumps({"peak": peak - before, "param_bytes": n_bytes}))


def measure_memory(k: int, options: dict[str, Any] | None, steps: int, width: int, device: str) -> dict[str, int]:
    """Run :func:`peak_memory_child` in a fresh interpreter; returns its ``peak`` and ``param_bytes``."""
    code = (
        "from hidlr.bench.overhead.memory import peak_memory_child as f; "
        f"f({k!r}, {options!r}, {steps!r}, {width!r}, {device!r})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
