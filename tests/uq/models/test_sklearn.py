"""scikit-learn conventions: its own estimator checks, clone, grid search, cross-validation, pickling."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from hidlr.uq.models import BNN, MDN, DeepEnsemble, MDNEnsemble

FAST = {"hidden": (8,), "epochs": 5}

#: Checks that cannot pass by design, with the reason (each is covered by a test of our own below).
DISTRIBUTION_OUT = (
    "predict_proba returns the predictive GaussianMixture (skpro's convention, the pinned "
    "surface), which the check compares as if it were an array of class probabilities"
)
EXPECTED = {
    "check_regressors_no_decision_function": "regressors here have predict_proba by design: it returns the "
    "predictive distribution, as skpro's probabilistic regressors do",
    "check_regressors_train": "score is the mean log-likelihood (skpro's convention), not R^2, so the check's "
    "R^2 threshold of 0.5 does not apply (test_predictions_fit_the_check_data checks R^2)",
    "check_estimators_pickle": DISTRIBUTION_OUT + " (test_pickle_round_trip checks both outputs)",
    "check_fit_idempotent": DISTRIBUTION_OUT + " (test_refit_is_idempotent checks both outputs)",
    "check_methods_subset_invariance": DISTRIBUTION_OUT + " (test_predictions_do_not_depend_on_other_rows)",
    "check_methods_sample_order_invariance": DISTRIBUTION_OUT + " (test_predictions_do_not_depend_on_other_rows)",
}
MONTE_CARLO = (
    "Monte Carlo predictions draw one noise tensor for all rows of a call, so a row's prediction "
    "depends on the other rows in the call (repeatable for the same call)"
)


def expected_failures(estimator):
    out = dict(EXPECTED)
    if getattr(estimator, "stochastic", False):
        out["check_methods_subset_invariance"] = MONTE_CARLO
        out["check_methods_sample_order_invariance"] = MONTE_CARLO
    return out


ESTIMATORS = [
    MDN(components=2, **FAST),
    BNN(samples=5, **FAST),
    DeepEnsemble(MDN(components=1, **FAST), members=2),
    MDNEnsemble(components=2, members=2, **FAST),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    return X, X @ np.array([1.0, -1.0, 0.5]) + 0.2 * rng.normal(size=120)


def test_predictions_fit_the_check_data():
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=200, n_features=10, n_informative=1, bias=5.0, noise=20, random_state=42)
    y = (y - y.mean()) / y.std()
    model = MDN(components=2).fit(X, y)
    assert r2_score(y, model.predict(X)) > 0.5


@pytest.mark.parametrize("est", [MDN(components=2, **FAST), DeepEnsemble(MDN(components=1, **FAST), members=2)])
def test_pickle_round_trip(est, data):
    X, y = data
    est.fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    a, b = est.predict_proba(X), back.predict_proba(X)
    assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale) and torch.equal(a.logits, b.logits)


@pytest.mark.parametrize("est", [MDN(components=2, **FAST), BNN(samples=5, **FAST)])
def test_refit_is_idempotent(est, data):
    X, y = data
    first = est.fit(X, y).predict_proba(X)
    second = est.fit(X, y).predict_proba(X)
    assert torch.equal(first.loc, second.loc) and torch.equal(first.scale, second.scale)


def test_predictions_do_not_depend_on_other_rows(data):
    X, y = data
    est = MDN(components=2, **FAST).fit(X, y)
    full, part = est.predict_proba(X), est.predict_proba(X[10:30])
    torch.testing.assert_close(part.loc, full.loc[10:30], rtol=1e-12, atol=1e-12)
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(est.predict(X[perm]), est.predict(X)[perm], rtol=1e-12)


def test_clone_grid_search_and_cross_validation(data):
    X, y = data
    est = MDN(components=2, hidden=(8,), epochs=8)
    copy = clone(est).set_params(components=3)
    assert copy.components == 3 and est.components == 2 and copy.get_params()["hidden"] == (8,)
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    search = GridSearchCV(est, {"lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert search.best_params_["lr"] in (1e-3, 1e-2)
    assert search.best_estimator_.predict(X).shape == (120,)
    ens = DeepEnsemble(MDN(components=1, hidden=(8,)), members=2)
    assert ens.get_params()["estimator__hidden"] == (8,)
    assert clone(ens).set_params(estimator__components=2).estimator.components == 2
    with pytest.raises(ValueError, match="invalid parameter 'colour'"):
        est.set_params(colour="red")
