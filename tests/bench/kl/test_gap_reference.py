"""Gap experiment against NUTS: Gaussian distances against SciPy, region statistics and verdicts on
plain numbers, argument checks, and a tiny end-to-end run."""

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from hidlr.bench.kl import gap_reference as G
from hidlr.bench.kl.reference_report import grows, verdict_lines
from hidlr.bench.kl.report import findings


@pytest.mark.parametrize("m0, v0, m1, v1", [(0.0, 1.0, 1.0, 4.0), (0.3, 0.2, -0.1, 0.05), (2.0, 1.0, 2.0, 1.0)])
def test_gaussian_kl_matches_numerical_integration(m0, v0, m1, v1):
    p, q = stats.norm(m0, math.sqrt(v0)), stats.norm(m1, math.sqrt(v1))
    expected, _ = integrate.quad(lambda y: p.pdf(y) * (p.logpdf(y) - q.logpdf(y)), -30, 30, points=[m0, m1])
    got = G.gaussian_kl(np.array([m0]), np.array([v0]), np.array([m1]), np.array([v1]))[0]
    assert got == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("m0, v0, m1, v1", [(0.0, 1.0, 1.0, 4.0), (0.3, 0.2, -0.1, 0.05), (1.0, 0.0, 0.0, 1.0)])
def test_gaussian_w2_matches_the_quantile_integral(m0, v0, m1, v1):
    """W2² in 1-D is the integral over u of the squared difference of the quantile functions."""

    def q(m, v, u):
        return m + math.sqrt(v) * stats.norm.ppf(u)

    sq, _ = integrate.quad(lambda u: (q(m0, v0, u) - q(m1, v1, u)) ** 2, 0, 1, limit=200)
    got = G.gaussian_w2(np.array([m0]), np.array([v0]), np.array([m1]), np.array([v1]))[0]
    assert got == pytest.approx(math.sqrt(sq), rel=1e-6)


def test_region_stats_and_distance_on_plain_numbers():
    in_gap = np.array([False, True, True, False])
    near = np.array([True, False, False, True])
    ref = {"mean": np.zeros(4), "epi": np.array([0.1, 2.0, 4.0, 0.3]), "var": np.array([1.1, 3.0, 5.0, 1.3])}
    s = G.region_stats(ref, in_gap, near)
    assert s["epi_gap"] == pytest.approx(3.0) and s["epi_near"] == pytest.approx(0.2)
    assert s["epi_ratio"] == pytest.approx(15.0) and s["var_ratio"] == pytest.approx(4.0 / 1.2)
    same = G.distance_to_reference(ref, ref, in_gap, near)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    shifted = {**ref, "mean": np.ones(4)}  # the mean off by 1 everywhere, the variances equal
    d = G.distance_to_reference(ref, shifted, in_gap, near)
    assert d["w2_f_gap"] == pytest.approx(1.0) and d["w2_f_near"] == pytest.approx(1.0)
    assert d["kl_gap"] == pytest.approx(np.mean([0.5 / 3.0, 0.5 / 5.0]))
    flat = {**ref, "epi": np.zeros(4)}  # no epistemic part: no ratio
    assert G.region_stats(flat, in_gap, near)["epi_ratio"] is None


def test_train_rmse_of_the_predictive_mean():
    import torch

    from hidlr.uq.distributions import GaussianMixture

    loc = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)  # means 2, 0, 2
    d = GaussianMixture(torch.zeros_like(loc), loc, torch.ones_like(loc), members=2)
    assert G.train_rmse(d, np.array([2.0, 1.0, 0.0])) == pytest.approx(math.sqrt(5.0 / 3.0))


def test_grows_verdict_thresholds():
    assert grows({"mean": 3.0, "se": 0.5}) == "grows in the gap"
    assert grows({"mean": 0.3, "se": 0.05}) == "shrinks in the gap"
    assert grows({"mean": 1.5, "se": 0.5}).startswith("not resolved")
    assert grows({"mean": 2.0, "se": float("nan")}) == "grows (one seed)"
    assert grows(None) == "no epistemic part"


def _stat(mean):
    return {"mean": mean, "se": 0.01, "n": 3}


def _summary(ratio, se, kl=None, epi_near=0.01):
    out = {
        "epi_ratio": {"mean": ratio, "se": se, "n": 3},
        "seeds_ratio_above_1": "3/3" if ratio > 1 else "0/3",
        "epi_gap": _stat(ratio * epi_near),
        "epi_near": _stat(epi_near),
    }
    if kl is not None:
        out["kl_gap"], out["kl_near"] = _stat(kl), _stat(2 * kl)
    return out


def _reference_result(chain_ratios, nuts_ratio=40.0, mf_ratio=0.3):
    return {
        "seeds": [0, 1, 2],
        "summary": {
            "nuts": _summary(nuts_ratio, 5.0),
            "bnn_homoscedastic": _summary(mf_ratio, 0.02, kl=0.5, epi_near=0.2),
            "laplace": _summary(10.0, 1.0, kl=0.2),
        },
        "runs": [{"nuts": {"chain_epi_ratios": chain_ratios}}],
    }


def test_verdict_blames_mean_field_only_when_every_chain_grows():
    text = " ".join(verdict_lines(_reference_result([20.0, 35.0, 60.0])))
    assert "failure is the mean-field approximation's" in text
    assert "between 20.0 and 60.0" in text
    assert text.index("Last-layer Laplace 0.20 ± 0.01 / 0.40") < text.index("NUTS's model) 0.50")  # by KL
    # relative to the reference: mean-field gap 0.3 * 0.2 / (40 * 0.01), near 0.2 / 0.01
    assert "NUTS's model) 0.15 / 20" in text
    unsettled = " ".join(verdict_lines(_reference_result([0.8, 35.0])))
    assert "not settled enough" in unsettled and "failure is" not in unsettled
    flat = " ".join(verdict_lines(_reference_result([0.8, 1.1], nuts_ratio=1.0)))
    assert "does not clearly grow" in flat


def test_kl_findings_cite_the_reference_when_given():
    from tests.bench.kl.test_kl import _fake_result

    lines = findings(_fake_result(), None, _reference_result([20.0, 35.0]))
    assert any("Against a NUTS reference posterior" in ln and "mean-field approximation's" in ln for ln in lines)
    assert not any("NUTS" in ln for ln in findings(_fake_result(), None, None))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"models": ["mdn"]}, "models"), ({"seeds": 0}, "seeds"), ({"seeds": [-1]}, "seeds"), ({"epochs": 0}, "epochs")],
)
def test_run_rejects_bad_arguments_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        G.run(tmp_path, progress=False, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing written


def test_tiny_run_writes_consistent_json_markdown_and_plot(tmp_path):
    pytest.importorskip("pyro")
    from hidlr.bench.kl.reference import NUTSSettings

    st = NUTSSettings(chains=2, warmup=10, samples=10, max_tree_depth=3)
    res = G.run(tmp_path, seeds=[0, 1], models=["laplace", "bnn"], settings=st, epochs=3, progress=False, command="x")
    saved = json.loads((tmp_path / G.JSON_NAME).read_text())
    assert saved["summary"].keys() == {"nuts", "laplace", "bnn"} and saved["seeds"] == [0, 1]
    for m in ("nuts", "laplace", "bnn"):
        ratios = [r[m]["epi_ratio"] for r in res["runs"]]
        assert saved["summary"][m]["epi_ratio"]["mean"] == pytest.approx(np.mean(ratios))
        for r in res["runs"]:
            assert r[m]["epi_ratio"] == pytest.approx(r[m]["epi_gap"] / r[m]["epi_near"])
    for r in res["runs"]:
        assert len(r["nuts"]["chain_epi_ratios"]) == 2
        assert r["laplace"]["kl_gap"] >= 0 and r["bnn"]["w2_f_near"] >= 0
        assert r["nuts"]["diagnostics"]["gap"]["draws"] == 20
        assert all(r[m]["train_rmse"] > 0 for m in ("nuts", "laplace", "bnn"))
    assert "curves" in res["runs"][0] and "curves" not in res["runs"][1]
    md = (tmp_path / G.MD_NAME).read_text()
    assert "NUTS reference" in md and "Last-layer Laplace" in md and "`x`" in md
    assert "training points (the task's noise sd: 0.1)" in md
    assert (tmp_path / G.PNG_NAME).stat().st_size > 0
    assert not (tmp_path / "report.md").exists()  # no KL study stored here: nothing to rebuild
