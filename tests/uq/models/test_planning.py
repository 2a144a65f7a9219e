"""The fit's plan: the carved validation rows, the scaling of the rows it trains on, the resolved
options, and nothing changed on the estimator."""

import numpy as np
import pytest
import torch

from hidlr.uq import BNN, MDN
from hidlr.uq.models.planning import MIN_SPLIT_ROWS, VALIDATION_SAMPLES, plan_fit


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    return X, 5.0 + 2.0 * X[:, 0] + rng.normal(size=200)


def test_carves_a_disjoint_validation_part_and_scales_the_training_rows_only(data):
    X, y = data
    est = MDN(validation_fraction=0.2, random_state=3)
    plan = plan_fit(est, X, y)
    assert plan.val_rows is not None and len(plan.val_rows) == 40 and plan.xs.shape == (160, 3)
    rows = plan.val_rows.numpy()
    fit_rows = np.setdiff1d(np.arange(200), rows)
    np.testing.assert_allclose(plan.val[1].numpy(), y[rows])
    # the targets are the other rows (in the carve's order), z-scored with their own statistics
    ys = (torch.as_tensor(y[fit_rows]) - plan.scaling["y_shift"]) / plan.scaling["y_scale"]
    np.testing.assert_allclose(np.sort(plan.ys.double().numpy()), np.sort(ys.numpy()), rtol=1e-6)
    assert plan.scaling["y_shift"].item() == pytest.approx(y[fit_rows].mean())
    # the same seed carves the same rows; another seed other rows
    assert torch.equal(plan_fit(est, X, y).val_rows, plan.val_rows)
    assert not torch.equal(plan_fit(est, X, y, seed=4).val_rows, plan.val_rows)


def test_options_resolve_from_the_call_then_the_estimator(data):
    X, y = data
    est = MDN(batch_size=32, epochs=7, lr=3e-3)
    plan = plan_fit(est, X, y, default_samples=None)
    assert (plan.epochs, plan.batch_size, plan.lr, plan.val_samples) == (7, 32, 3e-3, None)
    plan = plan_fit(est, X, y, epochs=3, batch_size=500, lr=1e-2, default_samples=5, validation_samples=2)
    # a batch larger than the training rows is cut to them
    assert (plan.epochs, plan.batch_size, plan.lr, plan.val_samples) == (3, plan.xs.shape[0], 1e-2, 2)
    assert plan_fit(est, X, y, default_samples=5).val_samples == 5
    with pytest.raises(ValueError, match="batch_size"):
        plan_fit(est, X, y, batch_size=0)


def test_no_carve_without_early_stopping_or_when_told_and_the_estimator_is_unchanged(data):
    X, y = data
    est = BNN(early_stopping=False)
    before = est.get_params()
    plan = plan_fit(est, X, y)
    assert plan.val is None and plan.val_rows is None and plan.patience is None and plan.xs.shape[0] == 200
    assert plan_fit(MDN(), X, y, carve=False).val_rows is None
    assert est.get_params() == before and not hasattr(est, "module_")


def test_the_stochastic_nets_validation_passes_come_from_the_estimator(data):
    X, y = data
    assert BNN().prepare_fit(X, y).val_samples == min(BNN()._samples(), VALIDATION_SAMPLES)
    assert MDN().prepare_fit(X, y).val_samples is None
    tiny = MIN_SPLIT_ROWS * 2 - 1
    with pytest.warns(UserWarning, match="too few to carve"):
        assert plan_fit(MDN(), X[:tiny], y[:tiny]).patience is None
