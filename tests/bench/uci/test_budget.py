"""The training budget of a UCI set and the validation part carved from a split's training rows."""

import math
from pathlib import Path

import numpy as np
import pytest

from hidlr.bench import uci
from hidlr.bench.uci.budget import budget_for, carve_validation, model_budget

UCI_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "uci"


def test_carve_validation_is_inside_training_rows_only():
    X, y = np.random.default_rng(0).normal(size=(120, 2)), np.arange(120.0)
    train, test = np.arange(10, 100), np.concatenate([np.arange(10), np.arange(100, 120)])
    fit, val = carve_validation(X, y, train, test, 0.2, seed=3)
    assert val.size == 18 and fit.size == 72
    assert np.intersect1d(fit, val).size == 0 and np.intersect1d(val, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([fit, val])), train)
    # deterministic per seed, different across seeds
    assert np.array_equal(carve_validation(X, y, train, test, 0.2, 3)[1], val)
    assert not np.array_equal(carve_validation(X, y, train, test, 0.2, 4)[1], val)


def test_carve_validation_errors():
    X, y = np.zeros((10, 1)), np.arange(10.0)
    with pytest.raises(ValueError, match="fraction"):
        carve_validation(X, y, np.arange(8), np.arange(8, 10), 1.5, 0)


@pytest.mark.skipif(not UCI_ROOT.exists(), reason="UCI data folder not present")
@pytest.mark.parametrize("name", uci.SETS)
def test_validation_never_overlaps_test_on_standard_splits(name):
    _, X, y, splits = uci.load_set(name, UCI_ROOT)
    assert len(splits) == 20
    for i, (tr, te) in enumerate(splits):
        b = budget_for(tr.size, quick=False)
        fit, val = carve_validation(X, y, tr, te, b.val_frac, i)
        assert np.intersect1d(val, te).size == 0
        assert np.intersect1d(fit, te).size == 0
        assert np.union1d(fit, val).size == tr.size


def test_budget_scales_with_size():
    small, big = budget_for(277, False), budget_for(7373, False)
    assert small.batch_size < big.batch_size and small.max_epochs > big.max_epochs
    assert budget_for(277, True).max_epochs < small.max_epochs
    with pytest.raises(ValueError, match="empty"):
        budget_for(0, False)


def test_a_step_budget_raises_the_epoch_cap_and_is_validated():
    default, longer = budget_for(691, False), budget_for(691, False, steps=3000)
    assert longer.max_epochs > default.max_epochs and longer.batch_size == default.batch_size
    assert longer.max_epochs == min(400, round(3000 / math.ceil(round(691 * 0.8) / 32)))
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            budget_for(691, False, steps=bad)


def test_a_model_with_its_own_budget_keeps_it_unless_the_run_sets_one_for_every_model():
    from hidlr.bench.uci.models import MODEL_STEPS

    n = 277  # yacht's training rows: 800 steps at batch 32 are 114 epochs, 3000 are 429 (capped at 400)
    assert MODEL_STEPS["mdn_ensemble_wide"] == 3000
    assert model_budget("mdn", n, False, None) == budget_for(n, False)
    assert model_budget("mdn_ensemble_wide", n, False, None) == budget_for(n, False, 3000)
    assert budget_for(n, False, 3000).max_epochs > budget_for(n, False).max_epochs
    for model in ("mdn", "mdn_ensemble_wide"):
        assert model_budget(model, n, False, 1600) == budget_for(n, False, 1600)
