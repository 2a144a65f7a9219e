"""Plumbing every benchmark shares: run metadata, standard JSON, a run journal that survives an
interrupted run, and one progress bar.

The benchmark packages (``bench/lr``, ``bench/uci``, ``bench/kl``, ``bench/overhead``,
``bench/uq_speed``) hold the experiments; this module holds only what they would otherwise each
write again.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


# ------------------------------------------------------------------------------------ metadata
def git_commit() -> str | None:
    """The commit of the source tree this package runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def package_version(name: str) -> str | None:
    """The installed version of a distribution (None when it is not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_metadata(seeds: Any = None, packages: Iterable[str] = ()) -> dict[str, Any]:
    """Machine, software and time stamp for a result file.

    ``seeds``: recorded as given (a count, a list or a sentence). ``packages``: distributions whose
    versions go under ``"packages"`` (None for one that is not installed).
    """
    import torch

    return {
        "machine": platform.node(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hidlr": package_version("hidlr"),
        "torch_threads": torch.get_num_threads(),
        "torch_device": str(torch.empty(0).device),
        "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seeds": seeds,
        "load_average_at_start": load_average(),
        "packages": {p: package_version(p) for p in packages},
    }


# ---------------------------------------------------------------------------------------- JSON
def clean_json(obj: Any) -> Any:
    """A copy that ``json.dumps`` writes as standard JSON: NaN and infinities become None, NumPy
    scalars and arrays become Python numbers and lists, tuples become lists, keys become strings."""
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, indent: int = 1) -> None:
    """Write ``clean_json(obj)`` to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean_json(obj), indent=indent))


# ------------------------------------------------------------------------------------- journal
class Journal:
    """A run's header and one JSON line per finished job, written as the run goes, so that a run
    stopped early keeps what it measured and its report can be written from the journal.

    Files in ``out_dir``: ``header_name`` (the run's settings and metadata, JSON) and
    ``lines_name`` (one JSON object per line).
    """

    def __init__(
        self, out_dir: str | Path, header_name: str = "run_header.json", lines_name: str = "partial.jsonl"
    ) -> None:
        self.out_dir = Path(out_dir)
        self.header_path = self.out_dir / header_name
        self.lines_path = self.out_dir / lines_name

    def start(self, header: dict[str, Any]) -> None:
        """Write the header and start an empty list of entries (an earlier run's are discarded)."""
        write_json(self.header_path, header)
        self.lines_path.write_text("")

    def append(self, entry: dict[str, Any]) -> None:
        """Add one finished job's entry (cleaned like :func:`clean_json`)."""
        with self.lines_path.open("a") as fh:
            fh.write(json.dumps(clean_json(entry), default=float) + "\n")

    def header(self) -> dict[str, Any]:
        """The header written by :meth:`start`."""
        if not self.header_path.exists():
            raise FileNotFoundError(f"no run header {self.header_path}")
        return json.loads(self.header_path.read_text())

    def entries(self) -> list[dict[str, Any]]:
        """The entries appended so far, in order (none if the lines file is missing)."""
        if not self.lines_path.exists():
            return []
        return [json.loads(line) for line in self.lines_path.read_text().splitlines() if line.strip()]

    def wall_until_last(self, t_start: float) -> float:
        """Seconds from ``t_start`` (``time.time()`` at the run's start) to the last entry's write."""
        return self.lines_path.stat().st_mtime - t_start


# ------------------------------------------------------------------------------------ progress
class Ticker:
    """Advances a progress bar: ``tick()`` one unit, ``tick("what", amount)`` with a description."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task

    def __call__(self, description: str | None = None, amount: float = 1.0) -> None:
        if description is None:
            self._bar.update(self._task, advance=amount)
        else:
            self._bar.update(self._task, advance=amount, description=description)


@contextmanager
def progress(label: str, total: float, enabled: bool = True) -> Iterator[Ticker]:
    """A rich progress bar ``label [bar] done/total elapsed eta description`` (nothing shown when
    ``enabled`` is false); yields a :class:`Ticker`. ``total``: units of work (jobs or weights)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, disable=not enabled, transient=False) as bar:
        yield Ticker(bar, bar.add_task("", total=total))
