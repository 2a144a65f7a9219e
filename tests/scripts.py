"""Import a script of ``benchmarks/`` (not a package) as a module, with its folder on ``sys.path``
while it imports (its sibling modules import by plain name)."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(folder: str, name: str) -> ModuleType:
    """``benchmarks/<folder>/<name>.py`` as the module ``name``."""
    where = str(BENCHMARKS / folder)
    sys.path.insert(0, where)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(where)
