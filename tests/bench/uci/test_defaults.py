"""Default-fit benchmark: records, pairing with the tuned protocol, report."""

import math

import pytest

from hidlr.bench.uci import defaults


def test_summary_pairs_with_tuned_records_by_split():
    recs = [
        {
            "set": "yacht",
            "model": "mdn",
            "variant": "early-stop",
            "split": s,
            "ll": ll,
            "rmse": 1.0,
            "cov90": 0.9,
            "width90": 2.0,
            "cpu_s": 1.0,
            "best_epoch": 10.0,
        }
        for s, ll in ((0, -1.0), (1, -2.0))
    ]
    recs.append({"set": "yacht", "model": "mdn", "variant": "early-stop", "split": 2, "error": "ValueError: x"})
    tuned = {("yacht", "mdn", 0): {"ll": -0.5, "cov90": 0.8}, ("yacht", "mdn", 1): {"ll": -2.5, "cov90": 1.0}}
    (row,) = defaults.summarize(recs, tuned)
    assert row["splits"] == 2 and row["failed"] == 1
    assert row["ll"]["mean"] == pytest.approx(-1.5)
    assert row["ll_minus_tuned"]["mean"] == pytest.approx(0.0)  # (-0.5 + 0.5) / 2
    assert row["tuned_cov90"]["mean"] == pytest.approx(0.9)


def test_smoke_run_on_diabetes(tmp_path):
    res = defaults.run(
        tmp_path, sets=["diabetes"], models=["mdn"], splits=1, variants=["early-stop"], progress=False, command="test"
    )
    (rec,) = res["records"]
    assert math.isfinite(rec["ll"]) and 0.0 <= rec["cov90"] <= 1.0 and rec["best_epoch"] >= 1
    assert math.isfinite(rec["val_ll"]) and rec["spread"] > 0
    report = (tmp_path / "defaults.md").read_text()
    assert "| diabetes | mdn | early-stop | 1/1 |" in report
    assert (tmp_path / "defaults.partial.jsonl").read_text().count("\n") == 1
    with pytest.raises(ValueError, match="variant"):
        defaults.default_model("mdn", "late-stop", 0)


def test_the_model_chosen_by_validation_is_scored_on_test_beside_the_published_best():
    def rec(model, split, val_ll, ll, variant="early-stop"):
        return {"set": "yacht", "model": model, "variant": variant, "split": split, "val_ll": val_ll, "ll": ll}

    recs = [
        rec("mdn", 0, -1.0, -0.5),
        rec("bnn", 0, -2.0, 0.9),  # better on test, worse on validation: not chosen
        rec("mdn", 1, -3.0, -0.3),
        rec("bnn", 1, -1.0, -0.1),
        rec("bnn", 1, 9.0, 9.0, variant="early-stop+refit"),  # another variant: ignored
        {"set": "yacht", "model": "mdn", "variant": "early-stop", "split": 2, "ll": 0.0},  # no validation figure
    ]
    out = defaults.chosen_by_validation(recs)["yacht"]
    assert out["splits"] == [0, 1] and out["models"] == ["mdn", "bnn"]
    assert out["ll"]["mean"] == pytest.approx(-0.3)
    assert out["best_published_ll"] == pytest.approx(-0.16) and out["beats_published"] is False
    assert out["discrete_target"] is False


def test_an_integer_target_set_is_not_scored_against_the_published_densities():
    recs = [{"set": "wine-quality-red", "model": "mdn", "variant": "early-stop", "split": 0, "val_ll": 3.0, "ll": 4.4}]
    out = defaults.chosen_by_validation(recs)["wine-quality-red"]
    assert out["discrete_target"] is True and "beats_published" not in out  # 4.4 > -0.89 means nothing
    assert out["best_published_ll"] == pytest.approx(-0.89)


def test_the_unscaled_variant_turns_variance_scaling_off():
    assert defaults.default_model("mdn", "early-stop+unscaled", 0).variance_scaling is False
    assert defaults.default_model("deep_ensemble", "early-stop", 0).estimator.variance_scaling is True
    for variant, scaled in (("early-stop", True), ("early-stop+unscaled", False)):
        ensemble = defaults.default_model("deep_ensemble", variant, 0)  # the ensemble's own factor too
        assert ensemble.variance_scaling is scaled and ensemble.estimator.variance_scaling is scaled


def test_the_wide_variant_widens_every_model_and_only_that():
    for name in defaults.MODELS:
        wide = defaults.default_model(name, "early-stop+wide", 0)
        plain = defaults.default_model(name, "early-stop", 0)
        member, base = (getattr(m, "estimator", m) for m in (wide, plain))
        assert tuple(member.hidden) == defaults.WIDE and tuple(base.hidden) != defaults.WIDE
