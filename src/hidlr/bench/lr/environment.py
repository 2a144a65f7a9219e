"""Machine and software description recorded with every learning-rate benchmark result."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hidlr.bench.harness import run_metadata

PACKAGES = (
    "torch",
    "numpy",
    "scikit-learn",
    "matplotlib",
    "prodigyopt",
    "dadaptation",
    "schedulefree",
    "dog-optimizer",
    "gen-optim",
    "rich",
)


def source_changed() -> bool:
    """Whether the source tree (``src/``) has changes that are not committed (False outside git)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "../../.."],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def environment() -> dict[str, Any]:
    """Platform, CPU, thread count, Python and package versions, and the source commit (short, with
    ``+dirty`` when ``src/`` has uncommitted changes: such a run cannot be reproduced from a commit)."""
    env = run_metadata(packages=PACKAGES)
    if env.get("git_commit"):
        env["git_commit"] = env["git_commit"][:7] + ("+dirty" if source_changed() else "")
    return env
