"""Imports point one way, as README.md's "Where things live" says: no module imports a layer above
its own (the one documented exception: ``HiDLR.influence`` imports ``hidlr.influence.scores``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hidlr"
#: top to bottom; a module may import its own layer and the layers below it
LAYERS = [
    "cli",
    "demo",
    "report",
    "integrations",
    "bench",
    "uq",
    "influence",
    "curvature",
    "optim",
    "groups",
    "probes",
    "distributed",
]
#: names the package root re-exports, by the layer that defines them
ROOT_NAMES = {"HiDLR": "optim", "ProbeError": "optim", "save_checkpoint": "optim"}
ALLOWED = {("src/hidlr/optim/hidlr.py", "influence")}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside ``hidlr`` (None outside it, or the root itself)."""
    parts = module.split(".")
    if parts[0] != "hidlr" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {layer_of(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hidlr":
                found |= {ROOT_NAMES.get(a.name, a.name) for a in node.names}
            else:
                found.add(layer_of(node.module))
    return {x for x in found if x in LAYERS}


def test_every_module_belongs_to_a_layer():
    tops = {
        p.stem if p.is_file() else p.name
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert tops == set(LAYERS), "a new top-level module needs a place in LAYERS and in the README's table"


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parents[1]).as_posix()
        own = path.relative_to(SRC).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for other in imported_layers(path):
            if LAYERS.index(other) < LAYERS.index(own) and (rel, other) not in ALLOWED:
                upward.append(f"{rel} ({own}) imports {other}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from hidlr.bench import harness\nimport hidlr.cli\nfrom hidlr import HiDLR, groups\n")
    assert imported_layers(bad) == {"bench", "cli", "optim", "groups"}
