"""Deep ensembles: members are seeded fits, prediction is their equal-weight mixture."""

import numpy as np
import pytest
import torch

from hidlr.uq.models import BNN, MDN, DeepEnsemble, MDNEnsemble

FAST = {"optimizer": "adam", "epochs": 3, "batch_size": 16}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 2))
    return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=48)


def test_members_are_seeded_fits_and_prediction_is_their_mixture(data):
    X, y = data
    ens = MDNEnsemble(components=2, members=3, hidden=(8,), early_stopping=False).fit(X, y, seed=10, **FAST)
    solo = [MDN(2, hidden=(8,), early_stopping=False).fit(X, y, seed=10 + i, **FAST).predict_proba(X) for i in range(3)]
    dist = ens.predict_proba(X)
    assert dist.members == 3 and dist.loc.shape == (48, 6)
    means = torch.stack([d.mean for d in solo])  # (3, n)
    assert torch.allclose(dist.mean, means.mean(0), atol=1e-6)
    assert torch.allclose(dist.epistemic_variance, means.var(0, unbiased=False), rtol=1e-4, atol=1e-9)
    yt = torch.as_tensor(y, dtype=torch.float32)
    mix = torch.logsumexp(torch.stack([d.log_prob(yt) for d in solo]), 0) - np.log(3)
    assert torch.allclose(dist.log_prob(yt), mix, atol=1e-5)


def test_ensemble_of_bnns_keeps_all_samples_as_members(data):
    X, y = data
    ens = DeepEnsemble(lambda: BNN(hidden=(4,), samples=10), members=2).fit(X, y, **FAST)
    assert ens.predict_proba(X[:5]).members == 20
    assert ens.predict_proba(X[:5], samples=3).members == 6


def test_ensemble_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="not fitted"):
        DeepEnsemble(MDN, 2).predict_proba(X)
    with pytest.raises(ValueError, match="members"):
        DeepEnsemble(MDN, 0).fit(X, y)
    with pytest.raises(TypeError, match="not a hidlr.uq estimator"):
        DeepEnsemble(lambda: "nope", 2).fit(X, y)
    with pytest.raises(ValueError, match="components"):
        MDNEnsemble(components=0).fit(X, y)
    bad = MDNEnsemble(components=2, members=2, hidden=(4,)).fit(X, y, **FAST)
    before = bad.predict(X)
    with pytest.raises(ValueError, match="NaN"):
        bad.fit(np.full_like(X, np.nan), y)
    assert np.array_equal(bad.predict(X), before)  # a failed re-fit keeps the fitted members


@pytest.mark.parametrize("value", [1, "yes", None])
def test_vectorize_that_is_not_a_bool_is_refused(value):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(TypeError, match="vectorize must be True or False"):
        DeepEnsemble(MDN(epochs=1), members=2, vectorize=value).fit(X, y)
    with pytest.raises(TypeError, match="vectorize must be True or False"):
        MDNEnsemble(members=2, epochs=1, vectorize=value).fit(X, y)


@pytest.mark.parametrize("vectorize", [True, False])
def test_an_unknown_fit_keyword_names_fit_not_an_internal_function(data, vectorize):
    X, y = data
    ensemble = DeepEnsemble(MDN(components=1, hidden=(4,)), members=2, vectorize=vectorize)
    with pytest.raises(TypeError, match=r"\.fit\(\) got an? unexpected keyword argument.*'bogus'") as err:
        ensemble.fit(X, y, bogus=1, **FAST)
    assert "plan_fit" not in str(err.value)
