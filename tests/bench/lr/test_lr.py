"""Smoke test of ``hidlr.bench.lr.run`` in quick mode on a tiny subset: files, JSON schema, report."""

import json

import pytest

from hidlr.bench.lr import run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr")
    res = run(
        out,
        quick=True,
        workloads=["digits-mlp-bias", "noisy-quadratic"],
        methods=["default", "grid2", "grid3", "prodigy"],
        progress=False,
        max_steps=20,
    )
    return out, res


def test_files_and_json_schema(quick):
    out, _ = quick
    data = json.loads((out / "results.json").read_text())
    assert {
        "benchmark",
        "quick",
        "seeds",
        "started",
        "duration_s",
        "environment",
        "workloads",
        "methods",
        "records",
        "summary",
    } <= set(data)
    assert data["quick"] is True and data["seeds"] == [0]
    assert len(data["records"]) == 2 * 4
    for r in data["records"]:
        assert {
            "workload",
            "method",
            "family",
            "seed",
            "status",
            "final_loss",
            "steps_to_target",
            "time_to_target",
            "step_time",
            "curve",
            "lr_trace",
        } <= set(r)
        assert r["curve"]["step"][0] == 0 and r["curve"]["step"][-1] == 20
    grid2 = {r["workload"]: r for r in data["records"] if r["method"] == "grid2"}
    assert grid2["digits-mlp-bias"]["reused_from"] == "default"  # Adam's grid point 2 is the default
    assert "reused_from" not in grid2["noisy-quadratic"]  # that grid's point 2 is not
    assert set(data["summary"]["workloads"]) == {"digits-mlp-bias", "noisy-quadratic"}
    tuned = data["summary"]["workloads"]["digits-mlp-bias"]["table"]["tuned"]
    assert tuned["runs"] == 2 and tuned["tuned_from"] in ("grid2", "grid3")
    assert {"performance_profile.png", "loss_curves.png"} <= {p.name for p in out.iterdir()}


def test_report_contains_the_tables(quick):
    out, _ = quick
    text = (out / "report.md").read_text()
    assert "| workload | tuned (lr) | default | default-wcos | hidlr-diag |" in text
    assert "| digits-mlp-bias |" in text and "| noisy-quadratic |" in text
    assert "### Median rank over workloads among single-run methods" in text
    assert "![performance_profile.png](performance_profile.png)" in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="seeds"):
        run("/nonexistent", seeds=0, progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        run("/tmp", methods=["nope"], progress=False)


def test_combine_merges_parts_and_refuses_duplicates(quick, tmp_path):
    from hidlr.bench.lr import combine

    out, _ = quick
    extra = tmp_path / "extra"
    run(
        extra,
        quick=True,
        workloads=["noisy-quadratic"],
        methods=["default", "grid4"],
        seeds=2,
        first_seed=1,
        progress=False,
        max_steps=10,
        plots=False,
    )
    merged = combine([out, extra], tmp_path / "merged", plots=False)
    assert len(merged["records"]) == 8 + 4 and merged["seeds"] == [0, 1, 2]
    assert [p["seeds"] for p in merged["parts"]] == [[0], [1, 2]]
    table = merged["summary"]["workloads"]["noisy-quadratic"]["table"]
    assert table["grid4"]["loss"]["n"] == 2 and table["default"]["loss"]["n"] == 3
    assert "Part 2: methods default, grid4" in (tmp_path / "merged" / "report.md").read_text()
    with pytest.raises(ValueError, match="more than one source"):
        combine([out, out], tmp_path / "dup", plots=False)


def test_ablation_only_run_writes_everything(tmp_path):
    res = run(
        tmp_path, quick=True, workloads=["noisy-quadratic"], methods=["hidlr-every16"], progress=False, max_steps=5
    )
    rec = res["records"][0]
    assert rec["status"] == "ok" and rec["hidlr"]["refreshes"] == 1  # steps 0 only, period 16
    assert {"results.json", "report.md", "performance_profile.png"} <= {p.name for p in tmp_path.iterdir()}
    assert "## Ablations of Hi-DLR diag" in (tmp_path / "report.md").read_text()
