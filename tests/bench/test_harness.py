"""The plumbing shared by the benchmarks: metadata, JSON, the run journal, the progress bar."""

import json
import math
import time

import numpy as np
import pytest

from hidlr.bench import harness


def test_write_json_nan_becomes_null(tmp_path):
    harness.write_json(tmp_path / "sub" / "r.json", {"x": float("nan"), "y": [np.float64(1.5)]})
    assert (tmp_path / "sub" / "r.json").read_text().replace(" ", "").replace("\n", "") == '{"x":null,"y":[1.5]}'


def test_clean_json_numpy_tuples_keys_and_infinities():
    got = harness.clean_json(
        {1: (np.int64(3), np.float32(0.5), -math.inf), "a": np.array([1.0, np.nan]), "b": np.bool_(True), "c": "text"}
    )
    assert got == {"1": [3, 0.5, None], "a": [1.0, None], "b": True, "c": "text"}
    assert type(got["1"][0]) is int
    json.dumps(got, allow_nan=False)  # standard JSON: raises on NaN or infinity


def test_run_metadata_names_machine_software_and_packages():
    meta = harness.run_metadata(seeds=[0, 1], packages=("numpy", "no-such-package-xyz"))
    for key in (
        "machine",
        "platform",
        "cpu",
        "cpu_count",
        "python",
        "torch",
        "numpy",
        "torch_threads",
        "git_commit",
        "started",
        "load_average_at_start",
    ):
        assert key in meta
    assert meta["seeds"] == [0, 1]
    assert meta["packages"]["numpy"] == np.__version__
    assert meta["packages"]["no-such-package-xyz"] is None
    json.dumps(harness.clean_json(meta), allow_nan=False)


def test_journal_round_trip_and_restart(tmp_path):
    j = harness.Journal(tmp_path / "run", "head.json", "lines.jsonl")
    t0 = time.time()
    j.start({"settings": 1, "bad": float("nan")})
    j.append({"job": 0, "value": 1.5})
    j.append({"job": 1, "value": float("inf")})
    assert j.header() == {"settings": 1, "bad": None}
    assert j.entries() == [{"job": 0, "value": 1.5}, {"job": 1, "value": None}]
    assert j.wall_until_last(t0) >= -1.0  # file times can trail time.time() by the file system's resolution
    j.start({"settings": 2})  # a new run discards the old entries
    assert j.entries() == []
    assert harness.Journal(tmp_path / "run", "head.json", "lines.jsonl").header() == {"settings": 2}


def test_journal_without_header_is_a_clear_error(tmp_path):
    j = harness.Journal(tmp_path)
    assert j.entries() == []
    with pytest.raises(FileNotFoundError, match="run_header.json"):
        j.header()


def test_progress_counts_ticks_and_can_be_silent():
    with harness.progress("test", 3, enabled=False) as tick:
        tick()
        tick("two more", 2.0)
        task = tick._bar.tasks[0]
        assert task.completed == 3 and task.description == "two more"
