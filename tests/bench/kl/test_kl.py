"""KL study: slope aggregation over seeds, gap regions, report and a quick smoke run."""

import json
import math

import numpy as np
import pytest

from hidlr.bench import kl
from hidlr.bench.kl.report import findings, gap_summary, write_report
from hidlr.bench.kl.tasks import gap_regions


def _job(task, model, n, kls):
    return {
        "task": task,
        "model": model,
        "n": n,
        "epochs": 10,
        "epochs_cap": 20,
        "tune_s": 0.1,
        "density": None,
        "seeds": [
            {"seed": s, "kl": v, "kl_mc_se": 0.001, "nll": 1.0, "fit_s": 0.1, "cov50": 0.5, "cov90": 0.9, "cov95": 0.95}
            for s, v in enumerate(kls)
        ],
    }


def _fake_result(sizes=(100, 1000, 10000)):
    jobs = []
    for n in sizes:
        # MDN: KL = n^-1 (seed 0) and 2 n^-1 (seed 1) -> slope -1; BNN: KL = 0.05 + small -> flat
        jobs.append(_job("bimodal", "mdn", n, [n**-1.0, 2 * n**-1.0]))
        jobs.append(_job("bimodal", "bnn", n, [0.5 * n**-0.25, 0.6 * n**-0.25]))
    return {
        "meta": {"machine": "m", "cpu_count": 2, "python": "3", "torch": "2", "started": "now"},
        "quick": True,
        "tasks": ["bimodal"],
        "sizes": list(sizes),
        "seeds": [0, 1],
        "models": ["mdn", "bnn"],
        "gap_models": [],
        "eval_n": 100,
        "workers": 1,
        "wall_seconds": 1.0,
        "jobs": jobs,
        "gap": [],
        "slopes": kl.slopes(jobs, list(sizes)),
    }


def test_slopes_from_jobs_match_the_power_laws():
    res = _fake_result()
    s = res["slopes"]["bimodal"]
    assert s["mdn"]["pooled_slope"] == pytest.approx(-1.0)
    assert s["mdn"]["per_seed_slopes"] == pytest.approx([-1.0, -1.0])
    assert s["bnn"]["pooled_slope"] == pytest.approx(-0.25)


def test_findings_state_each_claim_with_verdict():
    res = _fake_result()
    text = "\n".join(findings(res, None))
    for claim in ("1. *MDNs", "2. *The MDN's KL", "3. *Empirically"):
        assert claim in text
    # the per-seed slope difference is exactly -0.75 with zero spread -> 'supported'
    assert "-0.75 ± 0.00" in text and "supported" in text


def test_gap_regions_hand_example():
    x = np.array([0.0, 0.1, 0.2, 0.8, 0.9, 1.0])
    grid, in_gap, near = gap_regions(x, points=121)
    assert grid[0] == pytest.approx(-0.1) and grid[-1] == pytest.approx(1.1)
    # the widest gap is (0.2, 0.8); its middle half is (0.35, 0.65)
    assert np.all((grid[in_gap] > 0.35) & (grid[in_gap] < 0.65)) and in_gap.sum() > 10
    assert not np.any(in_gap & near)
    assert np.all(np.min(np.abs(grid[near][:, None] - x[None, :]), axis=1) <= 0.02 + 1e-12)


def test_gap_summary_ratios():
    g = [
        {
            "model": "bnn",
            "curves": None,
            "seeds": [
                {
                    "seed": 0,
                    "epi_gap": 4.0,
                    "epi_near": 1.0,
                    "var_gap": 5.0,
                    "var_near": 2.0,
                    "epi_ratio": 4.0,
                    "var_ratio": 2.5,
                },
                {
                    "seed": 1,
                    "epi_gap": 2.0,
                    "epi_near": 1.0,
                    "var_gap": 3.0,
                    "var_near": 2.0,
                    "epi_ratio": 2.0,
                    "var_ratio": 1.5,
                },
            ],
        }
    ]
    s = gap_summary(g)["bnn"]
    assert s["epi_ratio"]["mean"] == pytest.approx(3.0)
    assert s["epi_ratio"]["se"] == pytest.approx(1.0)
    assert s["log_epi_ratio"]["mean"] == pytest.approx((math.log(4) + math.log(2)) / 2)


def test_report_from_fake_result(tmp_path):
    res = _fake_result()
    write_report(res, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "## Findings" in report and "## KL to the true conditional density" in report
    assert "n=10000" in report and "-1.00" in report
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["slopes"]["bimodal"]["mdn"]["pooled_slope"] == pytest.approx(-1.0)
    assert (tmp_path / "kl_vs_n.png").stat().st_size > 1000


def test_run_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        kl.run(tmp_path, quick=True, models=["gp"], progress=False, workers=1)
    with pytest.raises(ValueError, match="sizes"):
        kl.run(tmp_path, quick=True, sizes=[5, 50], models=["mdn"], progress=False, workers=1)


def test_quick_smoke_run(tmp_path):
    res = kl.run(
        tmp_path,
        quick=True,
        tasks=["bimodal"],
        sizes=[60, 120],
        seeds=2,
        models=["mdn", "bnn"],
        progress=False,
        workers=1,
    )
    assert {(j["model"], j["n"]) for j in res["jobs"]} == {(m, n) for m in ("mdn", "bnn") for n in (60, 120)}
    for j in res["jobs"]:
        assert len(j["seeds"]) == 2 and 1 <= j["epochs"] <= j["epochs_cap"]
        for r in j["seeds"]:
            assert math.isfinite(r["kl"]) and 0.0 <= r["cov90"] <= 1.0
    assert set(res["slopes"]["bimodal"]) == {"mdn", "bnn"}
    assert {g["model"] for g in res["gap"]} == {"mdn", "bnn"}
    bnn = next(g for g in res["gap"] if g["model"] == "bnn")
    assert all(r["epi_gap"] >= 0 for r in bnn["seeds"])
    report = (tmp_path / "report.md").read_text()
    assert "## Findings" in report and "Limited data" in report
    for png in ("kl_vs_n.png", "densities.png", "gap.png"):
        assert (tmp_path / png).stat().st_size > 1000
    again = kl.finish(tmp_path)  # a stopped run is reported from its finished jobs
    assert again["stopped_early"] and again["slopes"]["bimodal"]["mdn"]["pooled_slope"] == pytest.approx(
        res["slopes"]["bimodal"]["mdn"]["pooled_slope"]
    )


def test_gap_check_writes_ratios_per_model(tmp_path):
    out = kl.gap_check(tmp_path / "gap.json", models=("bnn",), epochs=3, seeds=2, workers=1)
    on_disk = json.loads((tmp_path / "gap.json").read_text())
    assert on_disk["epochs"] == 3 and [r["model"] for r in on_disk["runs"]] == ["bnn"]
    ratios = [s["epi_ratio"] for s in out["runs"][0]["seeds"]]
    assert out["summary"]["bnn"]["mean"] == pytest.approx(np.mean(ratios))
    with pytest.raises(ValueError, match="unknown model"):
        kl.gap_check(tmp_path / "x.json", models=("nope",))
    with pytest.raises(ValueError, match="epochs"):
        kl.gap_check(tmp_path / "x.json", epochs=0)
