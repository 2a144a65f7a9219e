import json

from hidlr.bench.uq_speed import run


def test_quick_run_writes_ratios_for_every_method(tmp_path):
    res = run(tmp_path, repeats=1, quick=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved.keys() == res.keys()
    report = (tmp_path / "report.md").read_text()
    assert "bayesian-torch LinearReparameterization" in report and "pyro AutoNormal SVI" in report
    assert set(saved["ratios"]) == {"hidlr / bayesian-torch", "hidlr / pyro"}
    assert all(v > 0 for v in saved["ratios"].values())
