"""Bayesian MDN: ELBO scaling, predictive as a mixture over weight samples, learns two modes."""

import math

import numpy as np
import pytest
import torch

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import BayesianMDN, BayesianMDNNet
from hidlr.uq.models.training import seeded


@pytest.fixture
def net() -> BayesianMDNNet:
    torch.manual_seed(0)
    return BayesianMDNNet(2, 3, dataset_size=100, hidden=(6,)).double()


def test_kl_weight_follows_dataset_size(net):
    x, y = torch.randn(9, 2, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    with torch.no_grad():
        kl = float(net.kl())
        with seeded(2, x.device):
            a = float(net.loss(x, y, n_train=100))
        with seeded(2, x.device):
            b = float(net.loss(x, y, n_train=200))
    assert kl > 0
    assert a - b == pytest.approx(kl / 200, rel=1e-10)


def test_predictive_is_concat_of_sampled_mixtures(net):
    x = torch.randn(4, 2, dtype=torch.float64)
    s = 6
    with torch.no_grad():
        with seeded(5, x.device):
            dist = net.predictive(x, samples=s)
        with seeded(5, x.device):
            logits, loc, scale = net.sample_params(x.expand(s, 4, 2))
    ref = GaussianMixture.concat([GaussianMixture(logits[i], loc[i], scale[i]) for i in range(s)])
    assert dist.members == s
    grid = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None].expand(7, 4)
    assert torch.allclose(dist.log_prob(grid), ref.log_prob(grid), rtol=1e-12)
    assert torch.allclose(dist.epistemic_variance, ref.epistemic_variance, rtol=1e-10)
    block = dist.weights.reshape(4, s, 3).sum(-1)
    assert torch.allclose(block, torch.full((4, s), 1 / s, dtype=torch.float64))


def test_learns_bimodal_conditional():
    """y = +-x + small noise: a unimodal model puts its mean near 0; the Bayesian MDN puts its
    density on both branches and almost none at the midpoint."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, 400)
    y = np.where(rng.random(400) < 0.5, x, -x) + 0.05 * rng.normal(size=400)
    m = BayesianMDN(components=2, hidden=(16,)).fit(x[:, None], y, optimizer="adam", epochs=40, batch_size=50, lr=1e-2)
    xt = torch.tensor([[0.8], [1.2]])
    d = m.predict_proba(xt)
    branch = d.log_prob(torch.tensor([0.8, 1.2])).exp()
    middle = d.log_prob(torch.zeros(2)).exp()
    # exact density on a branch: 0.5 * N(0; 0, 0.05^2) ~ 4.0; between them it is ~0
    assert torch.all(branch > 1.0)
    assert torch.all(middle < 0.05)
    assert torch.allclose(d.cdf(torch.zeros(2)), torch.full((2,), 0.5, dtype=torch.float64), atol=0.1)
    assert math.isclose(float(d.weights.sum(-1)[0]), 1.0, rel_tol=1e-5)


def test_param_groups_cover_every_parameter_once(net):
    groups = BayesianMDN(components=3).param_groups(net)
    assert [g["name"] for g in groups] == ["trunk", "logits", "loc", "scale", "posterior_scales"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))


def test_default_optimizer_is_hidlr_over_named_groups():
    from hidlr import HiDLR

    m = BayesianMDN(components=2, hidden=(4,)).fit(np.zeros((8, 1)), np.arange(8.0), epochs=1)
    assert isinstance(m.optimizer_, HiDLR)
    assert [g["name"] for g in m.optimizer_.param_groups] == ["trunk", "logits", "loc", "scale", "posterior_scales"]


def test_a_posterior_scale_wider_than_the_prior_is_refused():
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(ValueError, match=r"posterior_scale must lie in \(0, prior_sigma\] = \(0, 1\]"):
        BayesianMDN(2, posterior_scale=2.0, hidden=(4,), epochs=1).fit(X, y)
