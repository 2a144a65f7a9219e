"""Estimator base: input validation, units, dtype, seeds, user optimizers, probes."""

import numpy as np
import pytest
import torch

from hidlr.uq.models import BNN, MDN
from hidlr.uq.models.training import seeded


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)
    return X, y


FAST = {"epochs": 2, "batch_size": 16, "optimizer": "adam"}


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), np.ones(2), "X contains 1 NaN or inf"),
        (np.ones((2, 2)), np.array([1.0, np.inf]), "y contains 1 NaN or inf"),
        (np.ones((3, 2)), np.ones(2), "different lengths"),
        (np.ones(3), np.ones(3), "X must be 2-D"),
        (np.ones((3, 2)), np.ones((3, 2)), r"y must have shape \(n,\) or \(n, 1\)"),
        (np.ones((0, 2)), np.ones(0), "empty"),
        (np.ones((3, 0)), np.ones(3), r"0 feature\(s\)"),
        ([["a", "b"]], [1.0], "numeric"),
    ],
)
def test_bad_training_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        MDN().fit(X, y, **FAST)


def test_bad_options(data):
    X, y = data
    with pytest.raises(ValueError, match="unknown optimizer"):
        MDN().fit(X, y, optimizer="sgdd")
    with pytest.raises(TypeError, match="callable"):
        MDN().fit(X, y, optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    with pytest.raises(ValueError, match="epochs"):
        MDN().fit(X, y, epochs=0, optimizer="adam")
    with pytest.raises(ValueError, match="lr"):
        MDN().fit(X, y, lr=-1.0, optimizer="adam")
    with pytest.raises(ValueError, match="components"):
        MDN(components=0).fit(X, y, **FAST)
    with pytest.raises(ValueError, match="hidden"):
        MDN(hidden=(0,)).fit(X, y, **FAST)
    with pytest.raises(ValueError, match="activation"):
        MDN(activation="swishy").fit(X, y, **FAST)
    with pytest.raises(ValueError, match="validation_fraction"):
        MDN(validation_fraction=1.5).fit(X, y, **FAST)
    with pytest.raises(ValueError, match="target_scaling"):
        MDN(target_scaling="minmax").fit(X, y, **FAST)
    with pytest.raises(TypeError, match="early_stopping"):
        MDN(early_stopping="yes").fit(X, y, **FAST)
    with pytest.raises(ValueError, match="validation_data: X has 2 features"):
        MDN().fit(X, y, validation_data=(np.ones((4, 2)), np.ones(4)), **FAST)


def test_predict_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="not fitted"):
        MDN().predict_proba(X)
    m = BNN(hidden=(4,)).fit(X, y, **FAST)
    with pytest.raises(ValueError, match="expecting 3 features"):
        m.predict_proba(np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        m.predict_proba(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="samples"):
        m.predict_proba(X, samples=0)


def test_predictions_are_in_original_units(data):
    """z-scoring inside fit makes training invariant to an affine change of y; predict undoes it."""
    X, y = data
    a = MDN(components=2).fit(X, y, seed=1, **FAST).predict_proba(X)
    b = MDN(components=2).fit(X, 1000.0 * y - 7.0, seed=1, **FAST).predict_proba(X)
    assert torch.allclose(b.mean, 1000.0 * a.mean - 7.0, rtol=1e-4, atol=1e-2)
    assert torch.allclose(b.stddev, 1000.0 * a.stddev, rtol=1e-4)
    yt = torch.as_tensor(y, dtype=torch.float32)
    assert torch.allclose(b.log_prob(1000.0 * yt - 7.0), a.log_prob(yt) - np.log(1000.0), atol=1e-4)


def test_same_seed_same_model_and_global_rng_untouched(data):
    X, y = data
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    p1 = BNN(hidden=(8,)).fit(X, y, seed=5, **FAST).predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    p2 = BNN(hidden=(8,)).fit(X, y, seed=5, **FAST).predict_proba(X)
    p3 = BNN(hidden=(8,)).fit(X, y, seed=6, **FAST).predict_proba(X)
    assert torch.equal(p1.loc, p2.loc) and torch.equal(p1.scale, p2.scale)
    assert not torch.allclose(p1.loc, p3.loc)


def test_dtype_and_tensor_input_are_followed(data):
    X, y = data
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)[:, None]  # float64 tensors, y as a column
    m = MDN(components=2).fit(Xt, yt, **FAST)
    assert all(p.dtype == torch.float64 for p in m.module_.net.parameters())
    m32 = MDN(components=2).fit(X, y, **FAST)  # NumPy: the default dtype
    assert all(p.dtype == torch.get_default_dtype() for p in m32.module_.net.parameters())
    # predictions are float64 whatever the net's dtype (targets with an offset keep their digits)
    assert m.predict_proba(Xt).loc.dtype == torch.float64 and m32.predict_proba(X).loc.dtype == torch.float64


def test_user_optimizer_gets_named_groups(data):
    X, y = data
    seen = {}

    def make(groups):
        seen["names"] = [g["name"] for g in groups]
        return torch.optim.SGD(groups, lr=0.0)

    m = MDN(components=2, early_stopping=False).fit(X, y, optimizer=make, epochs=1, batch_size=16, seed=3)
    assert seen["names"] == ["trunk", "logits", "loc", "scale"]
    assert isinstance(m.optimizer_, torch.optim.SGD)
    # lr = 0: the weights are exactly the initial ones, built from the same seed
    with seeded(3, torch.device("cpu")):
        yt = torch.as_tensor(y, dtype=torch.float64)
        ys = ((yt - yt.mean()) / yt.std(unbiased=False)).float()  # the statistics fit uses, in float64
        init = m.build(3, ys, len(y))
    for p, q in zip(m.module_.net.parameters(), init.parameters()):
        assert torch.equal(p, q)
    moved = MDN(components=2).fit(X, y, optimizer=lambda g: torch.optim.SGD(g, lr=0.1), epochs=1, batch_size=16, seed=3)
    assert not torch.equal(moved.module_.net.loc.weight, init.loc.weight)


def test_validation_history(data):
    X, y = data
    m = MDN(components=2, early_stopping=False, variance_scaling=False).fit(
        X[:48], y[:48], validation_data=(X[48:], y[48:]), **FAST
    )
    assert [r["epoch"] for r in m.history_] == [1, 2]
    expected = float(-m.predict_proba(X[48:]).log_prob(torch.as_tensor(y[48:], dtype=torch.float32)).mean())
    assert m.history_[-1]["val_nll"] == pytest.approx(expected, rel=1e-6)


def test_validation_samples_set_the_monte_carlo_passes_of_the_validation_nll(data):
    X, y = data
    yv = torch.as_tensor(y[48:], dtype=torch.float32)
    m = BNN(hidden=(8,), samples=40, early_stopping=False, variance_scaling=False).fit(
        X[:48], y[:48], validation_data=(X[48:], y[48:]), validation_samples=3, **FAST
    )
    three = float(-m.predict_proba(X[48:], samples=3).log_prob(yv).mean())
    forty = float(-m.predict_proba(X[48:]).log_prob(yv).mean())
    assert m.history_[-1]["val_nll"] == pytest.approx(three, rel=1e-6)
    assert three != pytest.approx(forty, rel=1e-6)
    with pytest.raises(ValueError, match="validation_samples"):
        BNN().fit(X, y, validation_data=(X, y), validation_samples=0, **FAST)


def test_default_training_is_hidlr_with_named_groups_and_crn_probes(data):
    """Hi-DLR by default; with common random numbers the stochastic BNN's probed losses are a smooth
    function of the step size, so the quadratic fits pass Hi-DLR's R^2 test and rates are updated
    (with fresh noise in every probe call the fits would be noise and get rejected)."""
    from hidlr import HiDLR

    X, y = data
    m = BNN(hidden=(8,)).fit(X, y, epochs=4, batch_size=16)
    opt = m.optimizer_
    assert isinstance(opt, HiDLR)
    assert [g["name"] for g in opt.param_groups] == ["means", "scales", "noise"]
    assert opt.history, "no refresh happened"
    accepted = [g["accepted"] for rec in opt.history for g in rec["groups"]]
    assert sum(accepted) >= 0.5 * len(accepted)


@pytest.mark.parametrize("name", ["BNN", "MCDropout", "BayesianMDN", "MDN"])
def test_stochastic_nets_train_without_travel_or_first_clip_and_the_mdns_with_them(data, name):
    """The UCI runs behind the choice: ``benchmarks/results/uci/`` (see STOCHASTIC_HIDLR_OPTIONS)."""
    from hidlr.uq import models

    X, y = data
    rules = getattr(models, name)(hidden=(8,)).fit(X, y, epochs=2, optimizer="hidlr").optimizer_.rules
    stochastic = name != "MDN"
    assert rules.ema == 0.9 and rules.travel is not stochastic
    assert rules.first_clip == (None if stochastic else (0.01, 2.0))


def test_chunked_prediction_equals_one_pass(data):
    """Rows are predicted in chunks that bound memory; the first chunk sees the same noise as a
    one-pass prediction of those rows, the chunks are joined in order, and results stay repeatable."""
    X, y = data
    m = BNN(hidden=(8,), samples=5).fit(X, y, **FAST)
    first = m.predict_proba(X[:10])
    m.module_.chunk = 5 * 8 * 10  # 10 rows per chunk
    chunked = m.predict_proba(X)
    assert chunked.members == 5 and chunked.loc.shape == (64, 5)
    assert torch.equal(chunked.loc[:10], first.loc) and torch.equal(chunked.scale[:10], first.scale)
    assert torch.equal(chunked.loc, m.predict_proba(X).loc)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_refit_that_is_not_a_bool_is_refused(data, value):
    with pytest.raises(TypeError, match="refit must be True or False"):
        MDN(refit=value, epochs=1).fit(*data)


def test_an_optimizer_class_gets_the_learning_rate(data):
    import functools

    X, y = data
    opts = {"early_stopping": False, "epochs": 1, "batch_size": 16}
    m = MDN(components=2, lr=0.5, optimizer=torch.optim.Adam, **opts).fit(X, y)
    assert isinstance(m.optimizer_, torch.optim.Adam)
    assert [g["lr"] for g in m.optimizer_.param_groups] == [0.5] * 4
    m.fit(X, y, lr=0.2)
    assert [g["lr"] for g in m.optimizer_.param_groups] == [0.2] * 4
    sgd = MDN(components=2, lr=0.05, **opts).fit(X, y, optimizer=functools.partial(torch.optim.SGD, momentum=0.9))
    assert [(g["lr"], g["momentum"]) for g in sgd.optimizer_.param_groups] == [(0.05, 0.9)] * 4
    own = MDN(components=2, lr=0.05, **opts).fit(X, y, optimizer=functools.partial(torch.optim.SGD, lr=0.01))
    assert [g["lr"] for g in own.optimizer_.param_groups] == [0.01] * 4  # a factory that fixes lr keeps it


@pytest.mark.parametrize(
    "seed, error, match",
    [
        (1.5, TypeError, "seed must be an integer"),
        ("3", TypeError, "seed must be an integer"),
        (True, TypeError, "seed must be an integer"),
        (2**70, ValueError, "seed must be <= "),
        (-1, ValueError, "seed must be >= 0"),
    ],
)
def test_a_bad_prediction_seed_is_refused_naming_seed(data, seed, error, match):
    X, y = data
    m = BNN(hidden=(4,), samples=3).fit(X, y, **FAST)
    for predict in (m.predict, m.predict_proba):
        with pytest.raises(error, match=match):
            predict(X, seed=seed)
    with pytest.raises(error, match=match):
        MDN(components=1).fit(X, y, seed=seed, **FAST)  # the same check as fit's


def test_an_unknown_fit_keyword_names_the_estimators_fit(data):
    from hidlr.uq.models import fit_side_by_side

    X, y = data
    with pytest.raises(TypeError, match=r"^MDN\.fit\(\) got an unexpected keyword argument 'bogus'$"):
        fit_side_by_side([MDN(components=1), MDN(components=1)], X, y, seeds=[0, 1], bogus=1, **FAST)
