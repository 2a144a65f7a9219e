"""Machine and software description recorded with every benchmark result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "numpy", "scikit-learn", "matplotlib", "prodigyopt", "dadaptation", "schedulefree",
            "dog-optimizer", "rich")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    """The short commit of the source tree, with ``+dirty`` when its ``src/`` has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=here)
        commit = out.stdout.strip() or None
        if commit:
            status = subprocess.run(["git", "status", "--porcelain", "--", "../../.."], capture_output=True,
                                    text=True, timeout=5, cwd=here)
            if status.returncode == 0 and status.stdout.strip():
                commit += "+dirty"
        return commit
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Platform, CPU, thread count, Python and package versions, and the source commit."""
    import hidlr

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": 1, "load_average_at_start": load,
        "hidlr": getattr(hidlr, "__version__", None), "git_commit": _git_commit(),
        "packages": {p: _version(p) for p in PACKAGES}, "torch_device": str(torch.empty(0).device),
    }
