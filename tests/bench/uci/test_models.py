"""The UCI protocol's model line-up: the published protocol's net for every model but the wide MDN
ensemble, which is tuned through a wide MDN."""

import pytest

from hidlr.bench.uci.models import HIDDEN, LABELS, MODELS, PROTOCOL_MODELS, TUNE_AS, WIDE, build_model, tuning_grid


@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_with_its_width_and_tunes_through_a_known_member(model):
    est = build_model(model, {"lr": 1e-3}, batch_size=32)
    member = est.estimator if hasattr(est, "estimator") else est
    assert tuple(member.hidden) == (WIDE if model == "mdn_ensemble_wide" else HIDDEN)
    assert model in LABELS and TUNE_AS[model] in LABELS
    assert tuning_grid(TUNE_AS[model], "adam", quick=False)


def test_the_wide_ensemble_is_tuned_through_a_wide_mdn_with_the_mdn_grid():
    wide = build_model("mdn_wide", {"lr": 1e-3, "components": 3}, batch_size=32)
    assert tuple(wide.hidden) == WIDE and wide.components == 3
    assert tuning_grid("mdn_wide", "adam", False) == tuning_grid("mdn", "adam", False)


def test_a_run_uses_the_six_protocol_models_unless_asked_for_the_wide_one():
    assert len(PROTOCOL_MODELS) == 6 and "mdn_ensemble_wide" not in PROTOCOL_MODELS
    assert set(MODELS) == {*PROTOCOL_MODELS, "mdn_ensemble_wide"}
