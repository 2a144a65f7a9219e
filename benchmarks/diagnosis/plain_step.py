"""Where the time of a HiDLR step that does not refresh goes, on the overhead benchmark's MLP.

Timings in place (right after the backward pass, where the data are cold), medians over the
steps 20-499 of each run, microseconds; absolute times move with the machine's load between
processes (compare figures from one run only; ``hidlr bench overhead`` gives the ratios):

- ``wrapper``: HiDLR's ``step`` call minus the base Adam step inside it, 3 runs of 500 steps, each
  in lockstep with bare Adam, whose step time is printed beside it;
- ``--checks``: the finiteness check in place of the engine's (``guards._fused_all_finite``), for
  each exact alternative: the fused gradient-scaler pass (``amp``), the same twice in a row
  (``amp2``: the second pass on warm data), per-tensor sums, ``_foreach_norm(2)``, ``_foreach_max``
  and per-tensor dot products; each figure includes gathering the gradients.

    .venv/bin/python benchmarks/diagnosis/plain_step.py [--checks]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch

import hidlr.optim.guards as guards
from hidlr.bench.overhead import timing

STEPS = 500


def _amp(ts: Sequence[torch.Tensor]) -> bool:
    found = torch.zeros(1)
    torch._amp_foreach_non_finite_check_and_unscale_(list(ts), found, torch.ones(1))
    return not bool(found)


CHECKS: dict[str, Callable[[Sequence[torch.Tensor]], bool]] = {
    "amp": _amp,
    "amp2": lambda ts: _amp(ts) and _amp(ts),
    "sums": lambda ts: bool(torch.stack([g.sum() for g in ts]).sum().isfinite()),
    "foreach_norm2": lambda ts: bool(torch.stack(torch._foreach_norm(ts, 2)).isfinite().all()),
    "foreach_max": lambda ts: bool(torch.stack(torch._foreach_max(ts)).isfinite().all()),
    "dots": lambda ts: bool(torch.stack([torch.dot(g.view(-1), g.view(-1)) for g in ts]).sum().isfinite()),
}


def wrapper_cost() -> tuple[float, float]:
    """(median µs of HiDLR's own work per plain step, median µs of bare Adam's step) in one run."""
    hidlr_step = timing._trainer(1, {}, 128, "cpu", timing.WIDTH, 0)
    adam_step = timing._trainer(1, None, 128, "cpu", timing.WIDTH, 0)
    h, a = [], []
    for t in range(STEPS):
        h.append(hidlr_step(t))
        a.append(adam_step(t))
    plain = [i for i in range(20, STEPS) if not h[i][2]]
    return (
        1e6 * statistics.median(h[i][3] - h[i][4] for i in plain),
        1e6 * statistics.median(a[i][3] for i in plain),
    )


def check_cost(check: Callable[[Sequence[torch.Tensor]], bool]) -> float:
    """Median µs of ``guards.check_gradients`` on plain steps with ``check`` as its fused pass."""
    seconds: list[float] = []
    original_fused, original_check = guards._fused_all_finite, guards.check_gradients

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original_check(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    import hidlr.optim.hidlr as wrapper

    guards._fused_all_finite, wrapper.check_gradients = check, timed
    try:
        step = timing._trainer(1, {}, 128, "cpu", timing.WIDTH, 0)
        adam_step = timing._trainer(1, None, 128, "cpu", timing.WIDTH, 0)
        refreshed = []
        for t in range(STEPS):
            refreshed.append(step(t)[2])
            adam_step(t)
    finally:
        guards._fused_all_finite, wrapper.check_gradients = original_fused, original_check
    return 1e6 * statistics.median(s for s, r in zip(seconds[20:], refreshed[20:]) if not r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checks", action="store_true", help="time the exact alternatives of the finiteness check")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.checks:
        for name, check in CHECKS.items():
            print(f"{name:14s} {check_cost(check):7.1f} µs")
        return
    for _ in range(3):
        wrapper, adam = wrapper_cost()
        print(f"wrapper {wrapper:7.1f} µs   Adam's step {adam:7.1f} µs")


if __name__ == "__main__":
    main()
