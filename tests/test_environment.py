"""The locked environment is coherent: every locked package imports and pip finds nothing broken."""

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
# distributions that ship no importable module of their own, or only a command
NO_MODULE = {"ruff"}


def _locked() -> list[str]:
    names = []
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split("==")[0])
    return names


def _top_level_modules(dist: str) -> list[str]:
    d = importlib.metadata.distribution(dist)
    top = d.read_text("top_level.txt")
    if top:
        return [m for m in top.split() if m and not m.startswith("_")]
    mods = set()
    for f in d.files or []:
        parts = f.parts
        if parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
            continue
        if len(parts) > 1 and (d.locate_file(Path(parts[0]) / "__init__.py")).exists():
            mods.add(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py") and not parts[0].startswith("_"):
            mods.add(parts[0][:-3])
    return sorted(mods)


@pytest.mark.parametrize("dist", [n for n in _locked() if n.lower() not in NO_MODULE])
def test_every_locked_package_imports(dist):
    mods = _top_level_modules(dist)
    assert mods, f"{dist}: no top-level module found"
    for mod in mods:
        importlib.import_module(mod)


def test_framework_entry_points_import():
    import lightning  # noqa: F401
    from transformers import Trainer  # noqa: F401


def test_pip_check_passes():
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
