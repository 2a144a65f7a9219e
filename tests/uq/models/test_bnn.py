"""BNN: ELBO scaling with the training-set size, Monte Carlo predictive, epistemic growth."""

import math

import numpy as np
import pytest
import torch

from hidlr.uq.models import BNN, BNNNet
from hidlr.uq.models.training import seeded


def _hand_kl(net: BNNNet, prior_sigma: float) -> float:
    """Closed-form KL(q || N(0, prior^2)) written out per weight in float64 NumPy."""
    total = 0.0
    for name, p in net.named_parameters():
        if not name.endswith("_mu"):
            continue
        mu = p.detach().numpy().astype(np.float64)
        rho = dict(net.named_parameters())[name[:-3] + "_rho"].detach().numpy().astype(np.float64)
        s = np.log1p(np.exp(rho))
        total += float(np.sum(np.log(prior_sigma / s) + (s**2 + mu**2) / (2 * prior_sigma**2) - 0.5))
    return total


@pytest.fixture
def tiny_net() -> BNNNet:
    torch.manual_seed(3)
    return BNNNet(2, dataset_size=40, hidden=(3,), prior_sigma=0.5).double()


def test_kl_term_weight_follows_dataset_size(tiny_net):
    x = torch.randn(8, 2, dtype=torch.float64)
    y = torch.randn(8, dtype=torch.float64)
    kl = _hand_kl(tiny_net, 0.5)
    losses = {}
    for n in (40, 80, 10_000):
        with torch.no_grad(), seeded(11, x.device):  # common random numbers: same weight noise
            losses[n] = float(tiny_net.loss(x, y, n_train=n))
    # doubling n halves the KL contribution: loss(n) - loss(2n) = KL / (2n)
    assert losses[40] - losses[80] == pytest.approx(kl / 80, rel=1e-10)
    # the default uses the dataset size given at construction
    with torch.no_grad(), seeded(11, x.device):
        assert float(tiny_net.loss(x, y)) == pytest.approx(losses[40], rel=1e-12)
    # what remains is minus the mean Gaussian log-likelihood of the batch for that weight sample
    with torch.no_grad(), seeded(11, x.device):
        loc, scale = tiny_net.sample_params(x)
    nll = -torch.distributions.Normal(loc, scale).log_prob(y).mean()
    assert losses[40] - kl / 40 == pytest.approx(float(nll), rel=1e-10)


def test_fitted_bnn_scales_kl_by_training_points_not_batches():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 2)), rng.normal(size=50)
    m = BNN(hidden=(4,), early_stopping=False).fit(X, y, optimizer="adam", epochs=1, batch_size=8)
    assert m.module_.net.dataset_size == 50


def test_predictive_is_mixture_of_weight_samples():
    torch.manual_seed(0)
    net = BNNNet(1, dataset_size=10, hidden=(5,)).double()
    x = torch.linspace(-1, 1, 4, dtype=torch.float64)[:, None]
    with torch.no_grad():
        dist = net.predictive(x, samples=2000)
    assert dist.members == 2000 and dist.loc.shape == (4, 2000)
    noise = float(torch.nn.functional.softplus(net.noise_rho.detach())) + net.noise_floor
    assert torch.allclose(dist.aleatoric_variance, torch.full((4,), noise**2, dtype=torch.float64))
    # the components are draws of f_w(x): their mean and spread agree with many more draws
    with torch.no_grad():
        loc, _ = net.sample_params(x.expand(200_000, 4, 1))
    se = (loc.var(0) / 2000).sqrt()
    assert torch.all((dist.mean - loc.mean(0)).abs() < 5 * se)
    rel_se = math.sqrt(2 / 1999)
    assert torch.all((dist.epistemic_variance / loc.var(0) - 1).abs() < 5 * rel_se)


def test_epistemic_variance_grows_away_from_data():
    rng = np.random.default_rng(0)
    n = 120
    x = np.concatenate([rng.uniform(-1, -0.4, n // 2), rng.uniform(0.4, 1, n // 2)])
    y = np.sin(3 * x) + 0.1 * rng.normal(size=n)
    m = BNN().fit(x[:, None], y, optimizer="adam", epochs=100, lr=1e-2)
    near = m.predict_proba(np.array([[-0.7], [0.7]])).epistemic_variance
    far = m.predict_proba(np.array([[-3.0], [3.0]])).epistemic_variance
    # Far outside the data the spread of the sampled functions must dominate: a factor 10 is far
    # above Monte Carlo noise (100 samples) and far below what a working posterior gives (~100x).
    assert torch.all(far > 10 * near.max())
    d = m.predict_proba(np.array([[0.0], [3.0]]))
    assert torch.allclose(d.epistemic_variance + d.aleatoric_variance, d.variance, rtol=1e-5)


def test_heteroscedastic_noise_depends_on_input():
    torch.manual_seed(0)
    net = BNNNet(1, dataset_size=10, hidden=(5,), heteroscedastic=True)
    x = torch.tensor([[-2.0], [2.0]])
    with torch.no_grad():
        _, scale = net.sample_params(x)
    assert scale[0] != scale[1]
    groups = {g["name"]: g["params"] for g in BNN(heteroscedastic=True).param_groups(net)}
    assert sum(p.numel() for p in groups["noise"]) == 2 * (5 + 1)
    assert sum(len(g) for g in groups.values()) == len(list(net.parameters()))


@pytest.mark.parametrize("value", [1, "yes", None])
def test_heteroscedastic_that_is_not_a_bool_is_refused(value):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(TypeError, match="heteroscedastic must be True or False"):
        BNN(heteroscedastic=value, epochs=1).fit(X, y)


@pytest.mark.parametrize("posterior_scale, prior_sigma", [(1e9, 1.0), (0.6, 0.5)])
def test_a_posterior_scale_wider_than_the_prior_is_refused(posterior_scale, prior_sigma):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    bnn = BNN(posterior_scale=posterior_scale, prior_sigma=prior_sigma, optimizer="adam", hidden=(4,), epochs=1)
    with pytest.raises(ValueError, match=r"posterior_scale must lie in \(0, prior_sigma\]"):
        bnn.fit(X, y)


def test_a_posterior_scale_equal_to_the_prior_is_accepted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    bnn = BNN(posterior_scale=0.5, prior_sigma=0.5, optimizer="adam", hidden=(4,), epochs=2, samples=5).fit(X, X[:, 0])
    assert bnn.module_.net.out.weight_sigma.max() <= 0.5 + 1e-2 and np.isfinite(bnn.predict(X)).all()
