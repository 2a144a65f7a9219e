"""UCI runner: goals, report and a quick smoke run."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hidlr.bench import uci
from hidlr.bench.uci.models import MODELS, PROTOCOL_MODELS
from hidlr.bench.uci.report import goals, write_report
from tests.bench.uci.conftest import summary_record as _record

UCI_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "uci"


def test_goals_against_published_numbers():
    recs = []
    for i in range(3):  # deep ensembles: concrete -3.06, yacht -1.18; VI: concrete -3.39, yacht -3.44
        recs += [
            _record("concrete", "mdn_ensemble", "hidlr", i, -3.00),
            _record("concrete", "bnn", "hidlr", i, -3.20),
            _record("yacht", "mdn_ensemble", "hidlr", i, -1.30),
            _record("yacht", "bnn", "hidlr", i, -3.50),
        ]
    g = goals(uci.summarize(recs))
    assert g["best_vs_deep_ensembles"]["concrete"]["beats"] is True
    assert g["best_vs_deep_ensembles"]["yacht"]["beats"] is False
    assert g["best_beats_de_count"] == 1
    assert g["bnn_vs_vi"]["concrete"]["hidlr"]["beats"] is True
    assert g["bnn_vs_vi"]["yacht"]["hidlr"]["beats"] is False
    assert g["bnn_beats_vi"]["hidlr"] == 1


def _check_result_schema(res, out):
    for key in ("meta", "records", "summary", "goals", "timing", "wall_seconds", "splits", "sets"):
        assert key in res
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["splits"] == res["splits"]
    for r in on_disk["records"]:
        for k in ("ll", "rmse", "crps", "cov90", "cov95", "reliability"):
            assert k in r["metrics"]
        assert r["hp"]["lr"] > 0 and r["epochs"] >= 1
    report = (out / "report.md").read_text()
    for heading in ("## Duration", "## Goals", "## Ours beside the published numbers", "## Per set", "## Calibration"):
        assert heading in report
    assert (out / "reliability.png").stat().st_size > 1000
    return report


def test_report_from_records(tmp_path):
    recs = [
        _record(s, m, o, i, -1.0 - 0.1 * i)
        for s in ("concrete", "yacht")
        for m in ("mdn", "bnn")
        for o in ("hidlr", "adam")
        for i in range(2)
    ]
    for r in recs:
        r.update(hp={"lr": 1e-3}, trials=None, val_nll=1.0)
    res = {
        "meta": {"machine": "m", "cpu_count": 2, "python": "3", "torch": "2", "started": "now"},
        "quick": True,
        "sets": {
            s: {"rows": 10, "features": 2, "budget": {"batch_size": 32, "max_epochs": 5}} for s in ("concrete", "yacht")
        },
        "models": ["mdn", "bnn"],
        "optimizers": ["hidlr", "adam"],
        "splits": [0, 1],
        "workers": 1,
        "wall_seconds": 5.0,
        "cpu_seconds": 10.0,
        "levels": list(uci.LEVELS),
        "records": recs,
        "job_times": [
            {"set": s, "split": i, "optimizer": o, "seconds": 2.0, "cpu_seconds": 1.25}
            for s in ("concrete", "yacht")
            for o in ("hidlr", "adam")
            for i in range(2)
        ],
        "summary": uci.summarize(recs),
        "hidlr_minus_adam_ll": uci.paired_difference(recs, "ll"),
        "hidlr_minus_adam_rmse": uci.paired_difference(recs, "rmse"),
        "model_contrasts_ll": {"mdn-bnn": uci.model_contrast(recs, "mdn", "bnn")},
    }
    write_report(res, tmp_path)
    report = _check_result_schema(res, tmp_path)
    assert "## Mixtures against the variational BNN" in report and "MDN − BNN (VI)" in report
    assert "higher by more than two standard errors in **0** of 4" in report  # equal LLs: no difference
    assert "-3.06" in report  # published deep-ensembles LL for concrete sits beside ours
    assert "Extrapolation, not a measurement" in report
    # 1.25 CPU-seconds per (set, optimizer) split -> 4 x 25 = 100 for 20 splits, on 2 cores 50 s
    assert res["timing"]["extrapolated_full_2core_s"] == pytest.approx(10.0 * 20 / 2 / 2)
    assert "about 800 optimizer steps" in report and "wide MDN ensemble" not in report
    res.update(budget_steps=3000, models=["mdn", "bnn", "mdn_ensemble_wide"])
    write_report(res, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "about 3000 optimizer steps" in report and "`--budget-steps 3000`" in report
    assert "the wide MDN ensemble: two hidden layers of 100" in report


@pytest.mark.skipif(not UCI_ROOT.exists(), reason="UCI data folder not present")
def test_quick_smoke_run_on_a_folder_by_path(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=80)
    folder = tmp_path / "toy"
    folder.mkdir()
    np.savetxt(folder / "data.txt", np.column_stack([X, y]))
    out = tmp_path / "out"
    res = uci.run(
        out,
        quick=True,
        sets=[str(folder)],
        models=["mdn", "mc_dropout", "deep_ensemble"],
        splits=1,
        optimizers=["adam"],
        progress=False,
        workers=1,
    )
    report = _check_result_schema(res, out)
    assert "toy" in res["summary"] and set(res["summary"]["toy"]) == {"mdn", "mc_dropout", "deep_ensemble"}
    # the deep ensemble is tuned through its single Gaussian member
    de = [r for r in res["records"] if r["model"] == "deep_ensemble"][0]
    assert de["tuned_as"] == "gaussian"
    assert "Deep ensemble (5)" in report
    for r in res["records"]:
        assert math.isfinite(r["metrics"]["ll"]) and 0.0 <= r["metrics"]["cov90"] <= 1.0
        # the fit-part model: its validation LL and its calibrated intervals on the test rows
        assert math.isfinite(r["val_ll"]) and r["calibrated"]["n_cal"] == 7
        assert r["spread"] > 0  # carried from the fit-part model to the final one
        for name in ("raw", "pit", "cqr", "recalibrate"):
            assert 0.0 <= r["calibrated"][name]["0.9"]["cov"] <= 1.0
    assert "Calibrated intervals beside the raw ones" in report
    assert set(res["calibration"]["toy"]) == {"mdn", "mc_dropout", "deep_ensemble"}
    assert sum(res["chosen_by_validation"]["toy"]["choices"].values()) == 1
    # a stopped run can be reported from the jobs it finished
    again = uci.finish(out)
    assert again["stopped_early"] and "stopped early" in (out / "report.md").read_text()
    ll_again, ll_first = (r["summary"]["toy"]["mdn"]["adam"]["ll"]["mean"] for r in (again, res))
    assert ll_again == pytest.approx(ll_first)


def test_the_default_line_up_runs_the_wide_mdn_ensemble_with_hidlr_alone_and_its_own_budget(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))  # enough rows that 800 steps stay under the 400-epoch cap
    y = X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=200)
    folder = tmp_path / "toy"
    folder.mkdir()
    np.savetxt(folder / "data.txt", np.column_stack([X, y]))
    res = uci.run(tmp_path / "out", quick=True, sets=[str(folder)], splits=1, progress=False, workers=1)
    assert res["lineup"]["adam"] == list(PROTOCOL_MODELS)
    assert res["lineup"]["hidlr"] == [*PROTOCOL_MODELS, "mdn_ensemble_wide"]
    assert res["models"] == list(MODELS)
    wide = [r for r in res["records"] if r["model"] == "mdn_ensemble_wide"]
    assert [r["optimizer"] for r in wide] == ["hidlr"] and wide[0]["metrics"] is not None
    mdn = [r for r in res["records"] if r["model"] == "mdn"][0]
    assert wide[0]["budget"]["max_epochs"] > mdn["budget"]["max_epochs"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "runs with Hi-DLR alone" in report and "MDN ensemble (5), 2x100: 3000" in report
    own_cap = f"at most {mdn['budget']['max_epochs']} epochs; MDN ensemble (5), 2x100: at most "
    assert own_cap + f"{wide[0]['budget']['max_epochs']})" in report  # the set's heading names both caps
    # models named by the run: every optimizer runs them, at the run's budget
    named = uci.run(
        tmp_path / "named",
        quick=True,
        sets=[str(folder)],
        models=["mdn_ensemble_wide"],
        splits=1,
        progress=False,
        workers=1,
        budget_steps=800,
    )
    assert sorted(r["optimizer"] for r in named["records"]) == ["adam", "hidlr"]
    assert named["records"][0]["budget"]["max_epochs"] == mdn["budget"]["max_epochs"]


def test_goals_leave_integer_target_sets_out_of_the_continuous_count():
    recs = [_record("wine-quality-red", "mdn", "adam", i, 2.5) for i in range(2)]  # spikes on integer scores
    recs += [_record("concrete", "mdn", "adam", i, -3.2) for i in range(2)]
    g = goals(uci.summarize(recs))
    assert g["best_beats_de_count"] == 1 and g["best_beats_de_count_continuous_only"] == 0


def test_the_final_model_keeps_the_spread_factors_of_the_fit_part_model():
    from hidlr.uq.models import MDN, MDNEnsemble

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = X[:, 0] + 0.3 * rng.normal(size=80)
    fit = {"epochs": 3, "validation_data": (X[60:], y[60:])}
    part = MDNEnsemble(components=2, members=2, hidden=(4,)).fit(X[:60], y[:60], **fit)
    final = MDNEnsemble(components=2, members=2, hidden=(4,), early_stopping=False).fit(X, y, epochs=3)
    assert final.spread_ == 1.0 and part.spread_ != 1.0
    assert uci.carry_spread(part, final) == part.spread_ == final.spread_
    for mine, theirs in zip(final.estimators_, part.estimators_):
        assert float(mine.module_.spread) == mine.spread_ == theirs.spread_ != 1.0
    single = MDN(2, hidden=(4,), early_stopping=False).fit(X, y, epochs=2)
    assert uci.carry_spread(None, single) == 1.0 and single.spread_ == 1.0
