"""Rotated-digits benchmark: the KL estimator against closed forms, the scores of the truth itself,
the seed statistics of the report, and a tiny end-to-end run."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from hidlr.bench import rotdigits
from hidlr.bench.rotdigits import report, scores
from hidlr.bench.rotdigits.train import TrainOptions
from hidlr.cli import app
from hidlr.uq.data.rotdigits import RotatedDigits
from hidlr.uq.distributions import GaussianMixture

D = torch.float64


def _normal(loc, scale):
    return GaussianMixture.from_normal(torch.tensor(loc, dtype=D), torch.tensor(scale, dtype=D))


def test_kl_estimate_matches_the_closed_form_between_gaussians():
    m0, s0 = [0.0, 1.0, -2.0, 5.0], [1.0, 2.0, 0.5, 3.0]
    m1, s1 = [0.5, -1.0, -2.0, 4.0], [1.5, 1.0, 1.0, 2.5]
    draws = 50_000
    est = scores.kl_per_row(_normal(m0, s0), _normal(m1, s1), draws, seed=0)
    for i in range(4):
        exact = math.log(s1[i] / s0[i]) + (s0[i] ** 2 + (m0[i] - m1[i]) ** 2) / (2 * s1[i] ** 2) - 0.5
        # the log-ratio is A z^2 + B z + const with z ~ N(0, 1): variance 2 A^2 + B^2
        a, b = s0[i] ** 2 / (2 * s1[i] ** 2) - 0.5, (m0[i] - m1[i]) * s0[i] / s1[i] ** 2
        se = math.sqrt((2 * a**2 + b**2) / draws)
        assert abs(float(est[i]) - exact) < 5 * se + 1e-12


def test_kl_estimate_of_a_two_mode_truth_matches_quadrature():
    truth = GaussianMixture(
        torch.zeros(1, 2, dtype=D), torch.tensor([[100.0, -80.0]], dtype=D), torch.full((1, 2), 10.0, dtype=D)
    )
    model = _normal([10.0], [80.0])
    grid = torch.linspace(-300, 300, 60_001, dtype=D)
    lp0 = truth.log_prob(grid[:, None])[:, 0]
    exact = float(torch.trapezoid(lp0.exp() * (lp0 - model.log_prob(grid[:, None])[:, 0]), grid))
    est = float(scores.kl_per_row(truth, model, 40_000, seed=1)[0])
    assert est == pytest.approx(exact, abs=0.02)
    assert float(scores.kl_per_row(truth, truth, 10, seed=1)[0]) == 0.0


def test_kl_estimate_refuses_bad_arguments():
    with pytest.raises(ValueError, match="draws"):
        scores.kl_per_row(_normal([0.0], [1.0]), _normal([0.0], [1.0]), 0, seed=0)
    with pytest.raises(ValueError, match="rows"):
        scores.kl_per_row(_normal([0.0], [1.0]), _normal([0.0, 1.0], [1.0, 1.0]), 5, seed=0)


def _hand_set():
    angles = torch.tensor([100.0, -60.0, 20.0, 100.0, -140.0, 70.0], dtype=D)
    return RotatedDigits(
        torch.zeros(6, 20, 20, dtype=D),
        angles,
        angles + 1.0,
        torch.tensor([0, 8, 1, 3, 1, 4]),
        torch.arange(6),
        150.0,
        10.0,
    )


def test_the_truth_scores_kl_zero_and_splits_its_mass_evenly():
    data = _hand_set()
    out = scores.score(data.true_distribution(), data, draws=8, seed=0)
    assert {g: out["groups"][g]["n"] for g in scores.GROUPS} == {
        "all": 6,
        "symmetric": 4,
        "asymmetric": 2,
        "bimodal": 3,
    }
    assert all(out["groups"][g]["kl"] == 0.0 for g in scores.GROUPS)
    assert out["mode_split"]["minor_share"] == pytest.approx(0.5)
    assert out["phantom_mass"] < 1e-30  # rows 3 and 5 (digits 3 and 4): nothing at the half-turn angle
    assert out["mode_split"]["mass_at_modes"] == pytest.approx(math.erf(3 / math.sqrt(2)))
    # one Gaussian at the first mode only: the smaller mode holds none of the mass
    one = _normal(data.angle.tolist(), [10.0] * 6)
    split = scores.mode_split(one, data)
    # a model that treats every digit as symmetric: half its mass at the half-turn angle
    hedge = GaussianMixture(
        torch.zeros(6, 2, dtype=D), torch.stack([data.angle, data.partner], -1), torch.full((6, 2), 10.0, dtype=D)
    )
    assert scores.phantom_mass(hedge, data) == pytest.approx(0.5 * math.erf(3 / math.sqrt(2)))
    assert split["minor_share"] == pytest.approx(0.0, abs=1e-12)
    assert split["mass_at_modes"] == pytest.approx(math.erf(3 / math.sqrt(2)))


def _fake(models_kl):
    jobs = [
        {"model": m, "seed": s, "groups": {"all": {"kl": v}}}
        for m, values in models_kl.items()
        for s, v in enumerate(values)
    ]
    return {"jobs": jobs}


def test_seed_statistics_and_verdicts():
    res = _fake({"mdn": [0.1, 0.2, 0.3], "bnn": [1.1, 1.0, 1.4]})
    assert report.seed_stat(res, "mdn", "groups", "all", "kl")["mean"] == pytest.approx(0.2)
    d = report.paired_difference(res, "mdn", "bnn", "groups", "all", "kl")
    assert d["mean"] == pytest.approx(-2.9 / 3)  # mean of (-1.0, -0.8, -1.1)
    assert report.verdict(d) == "lower (> 2 s.e.)"
    assert report.verdict(
        report.paired_difference(_fake({"a": [1.0], "b": [2.0]}), "a", "b", "groups", "all", "kl")
    ) == ("not testable with one seed")
    assert report.verdict({"mean": 0.1, "se": 0.2, "n": 3}) == "not resolved (within 2 s.e.)"


def test_tiny_run_end_to_end(tmp_path):
    tiny = rotdigits.Settings(
        train_copies=1, test_copies=1, draws=4, seeds=2, train=TrainOptions(epochs=2, patience=1), limit=240
    )
    res = rotdigits.run(tmp_path, settings=tiny, progress=False, command="test")
    assert {(j["model"], j["seed"]) for j in res["jobs"]} == {(m, s) for m in rotdigits.nets.MODELS for s in (0, 1)}
    for j in res["jobs"]:
        assert j["n_train"] == 240 and all(math.isfinite(j["groups"][g]["kl"]) for g in j["groups"])
        assert 0.0 <= j["groups"]["all"]["cov90"] <= 1.0
        assert len(j["best_epochs"]) == (5 if j["model"] == "deep_ensemble" else 1)
        if j["model"] == "mdn":  # one net: no epistemic part
            assert j["epistemic_sd"] == 0.0 and j["epistemic_ratio"] is None
        else:
            assert j["epistemic_sd"] > 0 and j["epistemic_ratio"] == pytest.approx(
                j["epistemic_sd_unseen"] / j["epistemic_sd"]
            )
    assert res["oracle"]["groups"]["all"]["kl"] == 0.0
    written = json.loads((tmp_path / "results.json").read_text())
    assert len(written["jobs"]) == 8 and set(written["densities"]) == set(rotdigits.nets.MODELS)
    text = (tmp_path / "report.md").read_text()
    assert "Command: `test`" in text and "## KL per digit class" in text and "## Findings" in text
    assert "## Epistemic spread off the training data" in text and res["n_unseen"] == 180
    assert (tmp_path / "densities.png").stat().st_size > 0 and (tmp_path / "kl_by_class.png").stat().st_size > 0
    assert len((tmp_path / "partial.jsonl").read_text().splitlines()) == 8


def test_run_refuses_unknown_models_and_seed_counts(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        rotdigits.run(tmp_path, models=["gp"], progress=False)
    with pytest.raises(ValueError, match="seeds"):
        rotdigits.run(tmp_path, seeds=0, progress=False)


def test_the_command_is_listed():
    res = CliRunner().invoke(app, ["bench", "rotdigits", "--help"])
    assert res.exit_code == 0 and "--quick" in res.output and "rotated" in res.output.lower()


def test_validation_holds_out_whole_source_images_and_fits_reproduce():
    from hidlr.bench.rotdigits.train import fit, validation_rows
    from hidlr.uq.data.rotdigits import RotatedDigitsTask

    data = RotatedDigitsTask().sample("train", 2, seed=0).subset(torch.arange(120))
    tr, va = validation_rows(data, 0.2, seed=0)
    assert sorted(tr.tolist() + va.tolist()) == list(range(120))
    assert set(data.source[tr].tolist()).isdisjoint(data.source[va].tolist())
    assert va.shape[0] == 2 * 12  # 12 of the 60 source images, both copies of each
    opts = TrainOptions(epochs=1, patience=1)
    a = fit("bnn", data, 3, opts, torch.device("cpu")).predict(data, torch.device("cpu"))
    b = fit("bnn", data, 3, opts, torch.device("cpu")).predict(data, torch.device("cpu"))
    torch.testing.assert_close(a.loc, b.loc, rtol=0, atol=0)
