"""The result store: parts merged oldest first, later runs replacing earlier ones, commits kept."""

import json

import pytest

from hidlr.bench.lr import combine, rebuild, run, run_into_store

ARGS = {"workloads": ["noisy-quadratic"], "seeds": 1, "progress": False, "max_steps": 5, "quick": True}


def test_store_parts_replace_older_runs(tmp_path):
    store = tmp_path / "store"
    run_into_store(store, "a", methods=["default", "grid3"], **ARGS)
    first = json.loads((store / "parts" / "a" / "results.json").read_text())
    rec = first["records"][0]
    assert rec["commit"] == first["environment"]["git_commit"]
    # a later part re-runs grid3 (and adds a start-rate variant): its run replaces the stored one
    merged = run_into_store(store, "b", methods=["grid3", "gen@lr0=0.001"], **ARGS)
    assert sorted(r["method"] for r in merged["records"]) == ["default", "gen@lr0=0.001", "grid3"]
    b = json.loads((store / "parts" / "b" / "results.json").read_text())
    kept = next(r for r in merged["records"] if r["method"] == "grid3")
    assert kept["wall_s"] == next(r for r in b["records"] if r["method"] == "grid3")["wall_s"]
    assert [(p["runs"], p["runs_kept"]) for p in merged["parts"]] == [(2, 1), (2, 2)]
    text = (store / "report.md").read_text()
    assert "(1 not replaced by a later part)" in text and "## Goals" in text
    assert {"results.json", "report.md"} <= {p.name for p in store.iterdir()}
    again = rebuild(store, plots=False)
    assert len(again["records"]) == 3


def test_combine_without_replace_refuses_duplicates_and_store_needs_parts(tmp_path):
    run(tmp_path / "x", methods=["default"], plots=False, **ARGS)
    with pytest.raises(ValueError, match="more than one source"):
        combine([tmp_path / "x", tmp_path / "x"], tmp_path / "y", plots=False)
    assert len(combine([tmp_path / "x", tmp_path / "x"], tmp_path / "y", plots=False, replace=True)["records"]) == 1
    with pytest.raises(FileNotFoundError, match="no parts"):
        rebuild(tmp_path / "empty")
    with pytest.raises(ValueError, match="plain folder name"):
        run_into_store(tmp_path, "../up", methods=["default"], **ARGS)


def test_records_without_commit_take_their_sub_part_commit(tmp_path):
    part = {
        "benchmark": "lr",
        "quick": True,
        "seeds": [0, 1],
        "started": "t",
        "duration_s": 1.0,
        "environment": {"git_commit": "ccc"},
        "workloads": {},
        "methods": {},
        "parts": [
            {"methods": ["grid0"], "seeds": [0, 1], "commit": "aaa"},
            {"methods": ["gen"], "seeds": [1], "commit": "bbb"},
        ],
        "records": [
            {"method": "grid0", "seed": 1},
            {"method": "gen", "seed": 1},
            {"method": "gen", "seed": 0},
            {"method": "x", "seed": 0, "commit": "own"},
        ],
    }
    (tmp_path / "results.json").write_text(json.dumps(part))
    from hidlr.bench.lr import load_part

    assert [r["commit"] for r in load_part(tmp_path)["records"]] == ["aaa", "bbb", "ccc", "own"]
