"""Default fits: a carved validation part, early stopping at the best epoch, refit, safe re-fits."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hidlr.uq.models import BNN, MDN, MDNEnsemble
from hidlr.uq.models.mdn import SNAPSHOTS
from hidlr.uq.models.scaling import ScaledNet


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 2))
    return X, np.sin(2 * X[:, 0]) + 0.2 * rng.normal(size=150)


def test_early_stopping_keeps_the_best_epoch_of_the_carved_part(data):
    X, y = data
    m = MDN(3, hidden=(32,), lr=3e-2, epochs=200, patience=5, snapshots=1).fit(X, y)
    curve = [h["val_nll"] for h in m.history_]
    assert m.best_epoch_ == int(np.argmin(curve)) + 1
    assert len(curve) == m.best_epoch_ + 5 < 200  # stopped five epochs after the best one
    val = np.random.default_rng(0).permutation(150)[:15]  # the carved rows (seed = random_state)
    # the spread factor fitted on the same rows can only raise their likelihood
    assert m.spread_ != 1.0
    assert -m.score(X[val], y[val]) <= min(curve) + 1e-12
    np.testing.assert_array_equal(np.sort(m.validation_rows_), np.sort(val))
    m.module_.set_spread(1.0)  # the best epoch's own predictive
    assert -m.score(X[val], y[val]) == pytest.approx(min(curve), rel=1e-9)


def test_snapshots_predict_with_the_equal_mixture_of_the_best_epochs_nets(data):
    X, y = data
    m = MDN(3, hidden=(32,), lr=3e-2, epochs=200, patience=5, variance_scaling=False).fit(X, y)
    assert m.snapshots == SNAPSHOTS and len(m.module_.snapshots) == SNAPSHOTS - 1  # the default
    curve = np.array([h["val_nll"] for h in m.history_])
    val = m.validation_rows_  # in the order of the carve, as scored during training
    Xv, yv = torch.as_tensor(X[val]), torch.as_tensor(y[val], dtype=torch.float64)
    module = m.module_
    scaling = {k: getattr(module, k) for k in ("x_shift", "x_scale", "y_shift", "y_scale")}
    with torch.no_grad():  # each net alone, in the fitted scaling
        log_p = torch.stack([ScaledNet(net, scaling)(Xv).log_prob(yv) for net in (module.net, *module.snapshots)])
    # each is the net of one of the epochs with the lowest validation NLL, the best first
    np.testing.assert_allclose((-log_p.mean(1)).numpy(), np.sort(curve)[:SNAPSHOTS], rtol=1e-9)
    mixture = torch.logsumexp(log_p, 0) - math.log(SNAPSHOTS)  # their equal mixture
    torch.testing.assert_close(m.predict_proba(X[val]).log_prob(yv), mixture)
    assert m.predict_proba(X[:3]).members == SNAPSHOTS
    # an ensemble's members keep theirs, trained side by side or one by one
    for vectorize in (True, False):
        ensemble = MDNEnsemble(components=2, members=2, hidden=(8,), epochs=8, snapshots=3, vectorize=vectorize)
        assert [len(e.module_.snapshots) for e in ensemble.fit(X, y).estimators_] == [2, 2]
        assert ensemble.predict_proba(X[:3]).members == 6
    # a refit trains one net
    assert len(MDN(2, hidden=(8,), epochs=5, refit=True).fit(X, y).module_.snapshots) == 0
    with pytest.raises(ValueError, match="snapshots"):
        MDN(snapshots=0).fit(X, y)


def test_refit_trains_again_on_every_row_for_the_best_epoch_count(data):
    X, y = data
    m = BNN(hidden=(8,), epochs=20, patience=3, refit=True, optimizer="adam").fit(X, y)
    assert m.module_.net.dataset_size == 150
    assert 1 <= m.best_epoch_ <= 20
    kept = BNN(hidden=(8,), epochs=20, patience=3, optimizer="adam").fit(X, y)
    assert kept.module_.net.dataset_size == 135 and kept.best_epoch_ == m.best_epoch_


def test_a_failed_refit_keeps_the_fitted_model(data):
    X, y = data
    m = MDN(2, hidden=(8,), epochs=5).fit(X, y)
    module, before = m.module_, m.predict(X)

    class Boom(torch.optim.SGD):
        def step(self, closure=None):
            if self.state.get("calls", 0) >= 3:
                raise FloatingPointError("diverged")
            self.state["calls"] = self.state.get("calls", 0) + 1
            return super().step(closure)

    with pytest.raises(FloatingPointError):
        m.fit(X, y, optimizer=lambda groups: Boom(groups, lr=0.1))
    with pytest.raises(ValueError, match="y contains"):
        m.fit(X, np.full(150, np.nan))
    assert m.module_ is module
    np.testing.assert_array_equal(m.predict(X), before)


def test_pandas_in_and_skpro_frames_out(data):
    X, y = data
    Xf = pd.DataFrame(X, columns=["a", "b"], index=np.arange(100, 250))
    ys = pd.Series(y, name="target", index=Xf.index)
    m = MDN(2, hidden=(8,), epochs=5).fit(Xf, ys)
    assert list(m.feature_names_in_) == ["a", "b"]
    pred = m.predict(Xf)
    assert isinstance(pred, np.ndarray) and pred.shape == (150,)
    iv = m.predict_interval(Xf.iloc[:4], coverage=[0.5, 0.9])
    assert list(iv.columns) == [("target", c, b) for c in (0.5, 0.9) for b in ("lower", "upper")]
    assert list(iv.index) == [100, 101, 102, 103]
    dist = m.predict_proba(Xf.iloc[:4])
    lo, hi = dist.interval(0.9)
    np.testing.assert_allclose(iv[("target", 0.9, "lower")], lo.numpy())
    np.testing.assert_allclose(iv[("target", 0.9, "upper")], hi.numpy())
    q = m.predict_quantiles(Xf.iloc[:4], alpha=[0.1, 0.5])
    assert list(q.columns) == [("target", 0.1), ("target", 0.5)]
    np.testing.assert_allclose(q[("target", 0.5)], dist.icdf(torch.full((4,), 0.5, dtype=torch.float64)).numpy())
    assert np.all(iv[("target", 0.5, "lower")] >= iv[("target", 0.9, "lower")])
    assert m.score(Xf, ys) == pytest.approx(float(m.predict_proba(Xf).log_prob(torch.as_tensor(y)).mean()))
    with pytest.raises(ValueError, match="coverage"):
        m.predict_interval(Xf, coverage=1.5)
    with pytest.raises(ValueError, match="alpha"):
        m.predict_quantiles(Xf, alpha=[0.0])


@pytest.mark.parametrize(
    "make", [lambda: MDN(2, hidden=(8,), epochs=3), lambda: MDNEnsemble(members=2, hidden=(8,), epochs=3)]
)
def test_columns_other_than_fit_are_refused_and_names_on_one_side_warn(data, make):
    """scikit-learn's rule: reordered or renamed columns would silently feed the wrong inputs."""
    X, y = data
    Xf = pd.DataFrame(X, columns=["a", "b"])
    m = make().fit(Xf, y)
    name = type(m).__name__
    expected = m.predict(Xf)
    with pytest.raises(ValueError, match=rf"passed to {name}.fit: the columns are in another order"):
        m.predict(Xf[["b", "a"]])
    with pytest.raises(ValueError, match="unseen at fit time: c. seen at fit time, missing now: b"):
        m.predict_proba(Xf.rename(columns={"b": "c"}))
    np.testing.assert_array_equal(m.predict(Xf[["b", "a"]][m.feature_names_in_]), expected)
    with pytest.warns(UserWarning, match=f"X does not have valid feature names, but {name} was fitted with") as seen:
        np.testing.assert_array_equal(m.predict(X), expected)
    assert len(seen) == 1  # the ensemble's members stay quiet
    m.fit(X, y)  # a re-fit on an array forgets the names
    assert not hasattr(m, "feature_names_in_")
    with pytest.warns(UserWarning, match=f"X has feature names, but {name} was fitted without"):
        m.predict(Xf)


def test_tiny_data_train_without_carving_and_say_so():
    X, y = np.arange(12.0)[:, None], np.arange(12.0)
    with pytest.warns(UserWarning, match="too few to carve"):
        m = MDN(1, hidden=(4,), epochs=3).fit(X, y)
    assert m.best_epoch_ == 3 and "val_nll" not in m.history_[0]
