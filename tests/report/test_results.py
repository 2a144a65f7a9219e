"""A page from a benchmark's results folder: kind detection, key tables, figures, errors."""

import json
from pathlib import Path

import pytest

from hidlr.report import build_results_page
from hidlr.report.results import _keyed, detect_kind, flatten, fmt_value, pivot

ROOT = Path(__file__).resolve().parents[2]


def test_fmt_value():
    assert fmt_value({"mean": 1.23456, "se": 0.01234, "n": 3}) == "1.235 ± 0.012"
    assert fmt_value({"mean": -2.04878, "se": 0.0324}) == "-2.049 ± 0.032"
    assert fmt_value({"mean": 41.7, "se": 3.3}) == "41.7 ± 3.3"
    assert fmt_value({"mean": 2.0, "se": float("nan")}) == "2"
    assert fmt_value({"median": 3.5, "n": 10}) == "3.5 (n=10)"
    assert fmt_value(None) == "—" and fmt_value(float("inf")) == "—"
    assert fmt_value(True) == "yes" and fmt_value([0.5, 1]) == "[0.5, 1]"


def test_flatten_and_pivot_hand_made():
    obj = {"a": {"x": 1, "y": {"mean": 2.0, "se": 0.5}, "long": [1, 2, 3, 4, 5]}, "b": {"x": 3}}
    assert flatten(obj) == [(("a", "x"), 1), (("a", "y"), {"mean": 2.0, "se": 0.5}), (("b", "x"), 3)]
    assert pivot(obj) == (["", "x", "y"], [["a", "1", "2.00 ± 0.50"], ["b", "3", ""]])
    assert pivot(obj, columns=["y", "nope"]) == (["", "y"], [["a", "2.00 ± 0.50"], ["b", ""]])
    assert pivot({"k": 1.5}) == (["key", "value"], [["k", "1.5"]])
    assert pivot(None) == ([], [])


def test_detect_kind(tmp_path):
    assert detect_kind({"benchmark": "lr"}, tmp_path) == "lr"
    assert detect_kind({"per_groups": {}, "memory": {}}, tmp_path) == "overhead"
    assert detect_kind({"paired_ratios": {}}, tmp_path) == "uq_speed"
    assert detect_kind({"slopes": {}, "jobs": []}, tmp_path) == "kl"
    assert detect_kind({"records": [], "sets": {}, "summary": {}}, tmp_path) == "uci"
    assert detect_kind({}, tmp_path / "finetune") == "finetune"
    assert detect_kind({"task": {}, "densities": {}, "jobs": []}, tmp_path) == "rotdigits"
    assert detect_kind({"counts": {}, "cases": []}, tmp_path) == "faults"
    assert detect_kind({"checks": [], "environment": {}}, tmp_path) == "cuda"
    assert detect_kind({}, tmp_path) == "other"


def test_a_list_of_records_is_one_row_per_record_named_by_its_fields(tmp_path):
    checks = [
        {"name": "trains", "ok": True, "seconds": 6.4, "error": None, "figures": {"loss": [0.3, 0.05]}},
        {"name": "compile", "ok": False, "seconds": 9.7, "error": "Failed: loss", "figures": {}},
    ]
    (tmp_path / "results.json").write_text(json.dumps({"checks": checks, "environment": {"commit": "abc1234"}}))
    page = build_results_page(tmp_path)
    text = page.render()
    assert "cuda benchmark" in text and "abc1234" in text
    tables = next(s for s in page.sections if s.anchor == "tables")
    assert any("Checks" in str(b) for b in tables.blocks)
    for cell in ("trains", "compile", "Failed: loss", "9.7", "6.4"):
        assert f">{cell}<" in text
    header, rows = pivot(_keyed(checks), ("ok", "seconds", "error"))
    assert header == ["", "ok", "seconds", "error"] and [r[0] for r in rows] == ["trains", "compile"]


def test_the_overhead_page_shows_its_time_and_memory_tables(tmp_path):
    per = {
        "same_rates_ratio_non_refresh_steps": 1.025,
        "ratio_all_steps": 1.07,
        "ratio_non_refresh_steps": 1.02,
        "cpu_ratio_non_refresh_steps": 1.03,
    }
    mem = {"extra_param_copies": 1.0, "extra_peak_param_copies": 1.12}
    results = {"per_groups": {"1": per, "4": per}, "memory": {"K=1 hidlr-default": mem}, "goals": {"all_steps": 1.1}}
    (tmp_path / "overhead.json").write_text(json.dumps(results))
    text = build_results_page(tmp_path).render()
    assert "Time per step against Adam" in text and "ratio_non_refresh_steps" in text and "1.07" in text
    assert "same_rates_ratio_non_refresh_steps" in text and "1.025" in text
    assert "Extra memory" in text and "K=1 hidlr-default" in text and "1.12" in text


def test_folder_page_shows_report_unreferenced_figures_and_key_tables(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hidlr.report.page import png_bytes

    for name in ("shown.png", "extra.png"):
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1])
        (tmp_path / name).write_bytes(png_bytes(fig))
    (tmp_path / "report.md").write_text("# My run\n\nSome text.\n\n![shown](shown.png)\n")
    (tmp_path / "results.json").write_text(
        json.dumps(
            {
                "meta": {"git_commit": "abc123", "started": "today", "cpu_count": 2},
                "slopes": {"bimodal": {"mdn": {"pooled_slope": -0.7, "per_seed": {"mean": -0.7, "se": 0.02}}}},
                "jobs": [],
            }
        )
    )
    page = build_results_page(tmp_path)
    text = page.render()
    assert page.title == "My run"
    assert [s.anchor for s in page.sections] == ["report", "figures", "tables"]
    assert text.count("<img ") == 2 and "<figcaption>extra.png</figcaption>" in text
    assert "abc123" in text and "-0.700 ± 0.020" in text and "Slopes of log KL" in text


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_results_page(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no report.md"):
        build_results_page(tmp_path)


@pytest.mark.parametrize("name", ["lr", "uci", "kl", "rotdigits", "faults"])
def test_committed_results_have_a_page(name):
    page = build_results_page(ROOT / "benchmarks" / "results" / name)
    text = page.render()
    tables = next(s for s in page.sections if s.anchor == "tables")
    assert len(tables.blocks) > 3  # provenance and at least one key table
    assert text.count("data:image/png;base64,") == len(list((ROOT / "benchmarks" / "results" / name).glob("*.png")))
