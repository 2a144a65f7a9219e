import importlib.util
import json

from hidlr.bench.uq_speed import run


def test_quick_run_writes_ratios_for_every_method(tmp_path):
    res = run(tmp_path, repeats=1, quick=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved.keys() == res.keys()
    report = (tmp_path / "report.md").read_text()
    assert "pyro AutoNormal SVI" in report
    libs = {"pyro"} | ({"bayesian-torch"} if importlib.util.find_spec("bayesian_torch") else set())
    assert set(saved["ratios"]) == {f"hidlr / {lib}" for lib in libs}
    assert all(v > 0 for v in saved["ratios"].values())
