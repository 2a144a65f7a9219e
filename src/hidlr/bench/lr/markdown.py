"""Markdown cells and tables of the learning-rate benchmark's report."""

from __future__ import annotations

import math


def num(x: float | None, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; None or a non-finite one as a dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}"


def spread_cell(s: dict[str, float] | None, digits: int = 4) -> str:
    """A :func:`hidlr.bench.lr.scores.spread` as ``median [min, max]`` (the median alone when they agree)."""
    if s is None:
        return "—"
    if s["n"] == 1 or s["min"] == s["max"]:
        return num(s["median"], digits)
    return f"{num(s['median'], digits)} [{num(s['min'], digits)}, {num(s['max'], digits)}]"


def gap(x: float) -> str:
    """A relative gap as a percentage; an infinite one says which side failed."""
    return f"{x:+.1%}" if math.isfinite(x) else ("failed" if x > 0 else "the other failed")


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return [row(header), row(["---"] * len(header))] + [row(r) for r in rows]
