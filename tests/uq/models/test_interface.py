"""The shared surface of the probabilistic regressors: ``score``'s sample weights checked."""

import numpy as np
import pytest
import torch

from hidlr.uq.models import MDN


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = X @ np.array([1.0, -1.0]) + 0.1 * rng.normal(size=40)
    return MDN(components=1, epochs=2).fit(X, y), X[:8], y[:8]


@pytest.mark.parametrize("weights", [-np.ones(8), np.zeros(8), np.full(8, np.nan), np.r_[np.ones(7), np.inf]])
def test_score_refuses_negative_non_finite_or_all_zero_weights(fitted, weights):
    est, X, y = fitted
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0 with a positive sum"):
        est.score(X, y, sample_weight=weights)


def test_score_with_weights_is_the_weighted_mean_log_density(fitted):
    est, X, y = fitted
    w = np.arange(8.0)
    each = np.array([est.score(X[i : i + 1], y[i : i + 1]) for i in range(8)])
    np.testing.assert_allclose(est.score(X, y, sample_weight=w), (w * each).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(est.score(X, y, sample_weight=np.ones(8)), est.score(X, y), rtol=1e-6)


@pytest.mark.parametrize("coverage", [None, "0.9", object()])
def test_predict_interval_refuses_a_coverage_that_is_no_number_naming_it(fitted, coverage):
    est, X, _ = fitted
    with pytest.raises(TypeError, match="coverage must be a number in"):
        est.predict_interval(X, coverage=coverage)


def test_predict_interval_takes_numpy_scalars(fitted):
    est, X, _ = fitted
    plain = est.predict_interval(X, coverage=0.9).to_numpy()
    for c in (np.float64(0.9), np.array(0.9), torch.tensor(0.9, dtype=torch.float64), [np.float64(0.9)]):
        np.testing.assert_array_equal(est.predict_interval(X, coverage=c).to_numpy(), plain)
