import json

from hidlr.bench.overhead import METHODS, make_model, measure_memory, run


def test_make_model_has_about_a_million_parameters_at_default_width():
    n = sum(p.numel() for p in make_model().parameters())
    assert 0.9e6 < n < 1.1e6


def test_overhead_report_is_complete(tmp_path):
    res = run(tmp_path, repeats=1, steps=3, width=32, device="cpu", progress=False, memory=False)
    saved = json.loads((tmp_path / "overhead.json").read_text())
    assert set(saved["time_ratio_vs_adam"]) == set(METHODS)
    assert saved["time_ratio_vs_adam"]["adam"] == 1.0
    assert all(v > 0 for v in res["median_step_seconds"].values())
    report = (tmp_path / "overhead.md").read_text()
    assert all(f"| {m} |" in report for m in METHODS)


def test_memory_is_measured_in_a_fresh_process():
    out = measure_memory("hidlr-default", 3, 8, 32, "cpu")
    n_params = sum(p.numel() for p in make_model(32).parameters())
    assert out["param_bytes"] == 4 * n_params and out["peak"] >= 0
