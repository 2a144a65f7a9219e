"""Machine and software description recorded with every learning-rate benchmark result."""

from __future__ import annotations

from typing import Any

from hidlr.bench.harness import run_metadata

PACKAGES = ("torch", "numpy", "scikit-learn", "matplotlib", "prodigyopt", "dadaptation", "schedulefree",
            "dog-optimizer", "rich")


def environment() -> dict[str, Any]:
    """Platform, CPU, thread count, Python and package versions, and the source commit."""
    return run_metadata(packages=PACKAGES)
