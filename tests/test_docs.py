"""Every Python code block in README.md and docs/**/*.md runs as written, each on its own (a reader
copies one block, not a page), in a fresh namespace inside a temporary working folder.

A block that must not run here (one that starts a benchmark of hours) is preceded by the line
``<!-- docs-test: skip REASON -->``; the test reports it as skipped with that reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(?P<reason>.*?)-->\s*$")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason or None)`` for each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group("lang") not in ("python", "py"):
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").splitlines()
        skip = SKIP.search(before[-1]) if before else None
        indent = m.group("indent")
        code = "\n".join(s[len(indent) :] if s.startswith(indent) else s for s in m.group("body").splitlines())
        out.append((line, code, skip.group("reason").strip() if skip else None))
    return out


BLOCKS = [(p, line, code, skip) for p in doc_files() for line, code, skip in python_blocks(p)]


def test_the_docs_have_code_to_check():
    files = {p.relative_to(ROOT).as_posix() for p, *_ in BLOCKS}
    assert "README.md" in files and any(f.startswith("docs/guide/") for f in files)


def test_block_finder_reads_indented_fences_and_skip_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "text\n\n  ```python\n  a = 1\n  ```\n\n<!-- docs-test: skip takes hours -->\n```python\nb = 2\n```\n"
        "```bash\nls\n```\n"
    )
    assert python_blocks(md) == [(3, "a = 1", None), (8, "b = 2", "takes hours")]


@pytest.mark.parametrize(
    ("path", "line", "code", "skip"),
    BLOCKS,
    ids=[f"{p.relative_to(ROOT).as_posix()}:{line}" for p, line, _, _ in BLOCKS],
)
def test_code_block_runs_as_written(path, line, code, skip, tmp_path, monkeypatch):
    if skip is not None:
        pytest.skip(skip)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    try:
        exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")


def test_uq_is_exported_from_the_package_root():
    import hidlr.uq

    assert hidlr.uq is hidlr.__dict__["uq"] and "uq" in hidlr.__all__
