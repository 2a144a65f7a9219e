"""Long-horizon versions (3000 steps) of two existing workloads: the same model, data and grouping
with a step budget 6-8x longer, where a rate that is right early on is too large late in training.

- ``digits-mlp-bias-long``: ``digits-mlp-bias`` for 3000 steps.
- ``noisy-quadratic-long``: ``noisy-quadratic`` for 3000 steps.
"""

from __future__ import annotations

from dataclasses import replace

from hidlr.bench.lr import wl_digits, wl_synthetic  # noqa: F401  (registers the short versions)
from hidlr.bench.lr.workloads import register, registered

LONG_STEPS = 3000


def long_version(name: str, steps: int = LONG_STEPS, target: float | None = None) -> None:
    """Register ``<name>-long``: workload ``name`` with ``steps`` steps (and optionally another target)."""
    short = registered(name)
    register(
        replace(
            short,
            name=f"{name}-long",
            steps=steps,
            quick_steps=4 * short.quick_steps,
            description=f"{short.description}; {steps} steps",
            target=short.target if target is None else target,
        )
    )


long_version("digits-mlp-bias")
long_version("noisy-quadratic")
