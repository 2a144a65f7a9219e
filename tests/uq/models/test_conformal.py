"""ConformalRegressor: any estimator, calibrated on held-out rows; coverage within the binomial band."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from hidlr.uq.models import BNN, MDN, ConformalRegressor, DeepEnsemble


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 1))
    return x, np.sin(3 * x[:, 0]) + (0.1 + 0.3 * np.abs(x[:, 0])) * rng.normal(size=n)


@pytest.mark.parametrize("method", ["pit", "cqr", "recalibrate"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: MDN(components=2, hidden=(16,), epochs=15),
        lambda: BNN(hidden=(16,), samples=20, epochs=15),
        lambda: DeepEnsemble(MDN(components=1, hidden=(8,), epochs=10), members=2),
    ],
    ids=["mdn", "bnn", "ensemble"],
)
def test_coverage_within_the_band_across_models_and_levels(make, method):
    X, y = _data(1000, 0)
    Xt, yt = _data(3000, 1)
    model = ConformalRegressor(make(), method, calibration_fraction=0.4).fit(X, y)
    assert model.n_calibration_ == 400
    frame = model.predict_interval(Xt, coverage=[0.5, 0.8, 0.9])
    for c in (0.5, 0.8, 0.9):
        lo, hi = frame[(0, c, "lower")].to_numpy(), frame[(0, c, "upper")].to_numpy()
        cov = np.mean((yt >= lo) & (yt <= hi))
        half = 4 * math.sqrt(c * (1 - c) * (1 / 402 + 1 / 3000))
        assert c - half <= cov <= c + 2 / 401 + half, (c, cov)


def test_recalibrated_quantiles_score_and_errors():
    X, y = _data(600, 2)
    base = MDN(components=2, hidden=(16,), epochs=10)
    model = ConformalRegressor(base, "recalibrate").fit(pd.DataFrame(X, columns=["x"]), pd.Series(y, name="t"))
    assert not hasattr(base, "module_")  # the template is copied, not fitted
    Xt, yt = _data(2000, 3)
    assert list(model.feature_names_in_) == ["x"]
    Xt = pd.DataFrame(Xt, columns=["x"])
    q = model.predict_quantiles(Xt, alpha=[0.1, 0.9])
    assert list(q.columns) == [("t", 0.1), ("t", 0.9)]
    below = np.mean(yt <= q[("t", 0.1)].to_numpy())
    assert abs(below - 0.1) < 4 * math.sqrt(0.09 * (1 / 122 + 1 / 2000))
    assert np.isfinite(model.score(Xt, yt))
    assert model.predict(Xt).shape == (2000,)
    assert clone(model).get_params()["method"] == "recalibrate"
    with pytest.raises(ValueError, match="method"):
        ConformalRegressor(base, "magic").fit(X, y)
    with pytest.raises(ValueError, match="not fitted"):
        ConformalRegressor(base).predict_interval(X)


@pytest.mark.parametrize("value", [3, "MDN", None])
def test_an_estimator_that_is_not_one_is_refused_naming_it(value):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(TypeError, match="estimator must be a hidlr.uq estimator"):
        ConformalRegressor(value).fit(X, y)


def test_a_single_row_is_refused_as_one_sample_as_scikit_learn_expects():
    from sklearn.utils.estimator_checks import check_fit2d_1sample

    with pytest.raises(ValueError, match="1 sample"):
        ConformalRegressor(MDN(components=1, hidden=(4,), epochs=1)).fit(np.zeros((1, 2)), np.zeros(1))
    check_fit2d_1sample("ConformalRegressor", ConformalRegressor(MDN(components=1, hidden=(4,), epochs=1)))
