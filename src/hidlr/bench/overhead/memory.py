"""Memory a short training run holds beyond Adam's, in copies of the parameters, each configuration
in a fresh process.

Two figures per configuration:

- **tensor storage** (deterministic, the goal's measure): the bytes of the distinct tensor storages
  reachable from Python (:func:`live_tensor_bytes`: parameters, their gradients, optimizer state,
  whatever the optimizer wrapper keeps, data), taken after every step and at the start of every
  probe call (the moments a refresh holds the most), the maximum minus Adam's maximum at the same
  moments of the same run. Temporaries inside one operation are not seen (the base optimizer's are
  the same for both).
- **peak resident set** (CPU) or peak allocated device memory (CUDA) above what the process held
  before training, minus Adam's: what the allocator made of it, including its own retention.

The child trains the overhead workload (:mod:`hidlr.bench.overhead.timing`) at a larger width, so
that one parameter copy stands well above the noise of the second figure.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import warnings
from typing import Any

import torch

from hidlr.bench.overhead.timing import deep_mlp, timed_run


def _is_tensor(obj: object) -> bool:
    """isinstance(obj, Tensor), False for a weak proxy whose referent is gone (Lightning leaves some)."""
    try:
        return isinstance(obj, torch.Tensor)
    except ReferenceError:
        return False


def live_tensor_bytes() -> dict[str, int]:
    """Bytes of the distinct storages of the dense tensors reachable from Python, and of their
    gradients, per device type (``{"cpu": ..., "cuda": ...}``). Views count once; sparse tensors
    are not counted. Uncollected garbage counts: it holds memory until the collector runs."""
    storages: dict[tuple[torch.device, int], int] = {}

    def add(t: torch.Tensor) -> None:
        if t.layout == torch.strided and t.device.type != "meta":
            try:
                st = t.untyped_storage()
                key = (t.device, st.data_ptr())
            except RuntimeError:  # a tracing tensor of torch.compile (FakeTensor): no storage of its own
                return
            storages[key] = max(storages.get(key, 0), st.nbytes())

    with warnings.catch_warnings():  # isinstance on deprecated torch module attributes warns
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if _is_tensor(obj)]
    for t in tensors:
        add(t)
        if t.grad is not None:  # a gradient is reachable from its tensor only, not as an object
            add(t.grad)
    out: dict[str, int] = {}
    for (device, _), n in storages.items():
        out[device.type] = out.get(device.type, 0) + n
    return out


def memory_child(
    k: int, options: dict[str, Any] | None, steps: int, width: int, device: str, account: bool = True
) -> dict[str, int]:
    """Train; return the parameter bytes and either (``account``) the maximum live tensor bytes on
    ``device``'s type, after each step and at each probe call, or the peak memory above the start
    (resident set, or allocated CUDA memory), untouched by the accounting's own objects."""
    n_bytes = sum(p.numel() * p.element_size() for p in deep_mlp(width=width).parameters())
    if account:
        gc.collect()  # garbage left from before the run (in a shared process) is not the run's
        kind, seen = torch.device(device).type, [0]

        def hook() -> None:
            seen[0] = max(seen[0], live_tensor_bytes().get(kind, 0))

        timed_run(k, options, steps, batch=32, device=device, width=width, hook=hook)
        return {"tensors": seen[0], "param_bytes": n_bytes}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    timed_run(k, options, steps, batch=32, device=device, width=width)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak": peak - before, "param_bytes": n_bytes}


def measure_memory(k: int, options: dict[str, Any] | None, steps: int, width: int, device: str) -> dict[str, int]:
    """:func:`memory_child` twice, each in a fresh interpreter (accounted, then the peak without the
    accounting's objects); returns ``tensors``, ``peak`` and ``param_bytes``."""
    out: dict[str, int] = {}
    for account in (True, False):
        code = (
            "import json; from hidlr.bench.overhead.memory import memory_child as f; "
            f"print(json.dumps(f({k!r}, {options!r}, {steps!r}, {width!r}, {device!r}, {account!r})))"
        )
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
    return out
