"""The report's Markdown cells and tables."""

import math

from hidlr.bench.lr import markdown as md


def test_numbers_spreads_and_gaps():
    assert md.num(0.123456) == "0.1235" and md.num(None) == "—" and md.num(math.inf) == "—"
    assert md.spread_cell({"median": 1.0, "min": 0.5, "max": 2.0, "n": 3}) == "1 [0.5, 2]"
    assert md.spread_cell({"median": 1.0, "min": 1.0, "max": 1.0, "n": 3}) == "1"
    assert md.spread_cell(None) == "—"
    assert md.gap(-0.0312) == "-3.1%" and md.gap(math.inf) == "failed" and md.gap(-math.inf) == "the other failed"


def test_table_lines():
    assert md.table(["a", "b"], [["1", "2"]]) == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
