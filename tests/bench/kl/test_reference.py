"""NUTS reference posterior: log density against autograd, the sampler against a closed-form
Gaussian posterior, the predictive assembly against hand-computed moments, argument checks."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("pyro")

from hidlr.bench.kl.reference import (
    NUTSPosterior,
    NUTSSettings,
    log_joint,
    log_joint_and_grad,
    nuts_posterior,
    run_chains,
)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_log_joint_and_gradient_match_torch_autograd(activation):
    st = NUTSSettings(hidden=7, activation=activation, prior_sigma=0.7, noise_prior=1.3)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(25, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(25, generator=gen, dtype=torch.float64)
    theta = torch.randn(st.size(2), generator=gen, dtype=torch.float64, requires_grad=True)
    value = log_joint(theta, x, y, st)
    (grad,) = torch.autograd.grad(value, theta)
    v_np, g_np = log_joint_and_grad(theta.detach().numpy(), x.numpy(), y.numpy(), st)
    assert v_np == pytest.approx(value.item(), rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(g_np, grad.numpy(), rtol=1e-10, atol=1e-10)


def test_log_joint_matches_the_model_written_with_torch_distributions():
    st = NUTSSettings(hidden=3, prior_sigma=0.5, noise_prior=2.0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, generator=gen, dtype=torch.float64)
    y = torch.randn(6, generator=gen, dtype=torch.float64)
    theta = torch.randn(st.size(1), generator=gen, dtype=torch.float64)
    W1, b1, w2, b2, log_sigma = theta[:3, None], theta[3:6], theta[6:9], theta[9], theta[10]
    f = torch.relu(x @ W1.T + b1) @ w2 + b2
    D = torch.distributions
    sigma = log_sigma.exp()
    expected = (
        D.Normal(f, sigma).log_prob(y).sum()
        + D.Normal(0.0, 0.5).log_prob(theta[:-1]).sum()
        + D.HalfNormal(2.0).log_prob(sigma)
        + log_sigma  # Jacobian of sigma = exp(log_sigma)
    )
    # the log density is unnormalised: the prior's constants are dropped
    consts = D.Normal(0.0, 0.5).log_prob(torch.zeros((), dtype=torch.float64)) * 10
    consts = consts + D.HalfNormal(2.0).log_prob(torch.zeros((), dtype=torch.float64))
    assert log_joint(theta, x, y, st).item() == pytest.approx((expected - consts).item(), rel=1e-12)


def test_nuts_chains_recover_a_closed_form_gaussian_posterior():
    """Bayesian linear regression with known noise: posterior N(mu, S) in closed form."""
    gen = torch.Generator().manual_seed(1)
    n, d, alpha, s2 = 30, 3, 0.5, 0.25
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    noise = 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + noise
    S = torch.linalg.inv(alpha * torch.eye(d, dtype=torch.float64) + X.T @ X / s2)
    mu = S @ X.T @ y / s2

    def potential(w):
        r = y - X @ w
        return 0.5 * r.dot(r) / s2 + 0.5 * alpha * w.dot(w)

    st = NUTSSettings(chains=2, warmup=150, samples=300, max_tree_depth=5)
    draws, stats = run_chains(potential, lambda g: torch.randn(d, generator=g, dtype=torch.float64), st, seed=4)
    assert draws.shape == (2, 300, d)
    flat = draws.reshape(-1, d)
    sd = S.diagonal().sqrt()
    # Monte Carlo tolerance: 600 draws with an ESS of at least ~150 give a mean error below ~0.1 sd
    assert ((flat.mean(0) - mu).abs() / sd).max() < 0.25
    ratio = flat.var(0) / S.diagonal()
    assert ((ratio > 0.7) & (ratio < 1.4)).all(), ratio
    corr_err = (torch.cov(flat.T) - S).abs() / (sd[:, None] * sd[None, :])
    assert corr_err.max() < 0.2
    from pyro.infer.mcmc.util import diagnostics

    r_hat = diagnostics({"w": draws})["w"]["r_hat"]
    assert (r_hat < 1.05).all()
    assert sum(stats["divergences"]) == 0


def _posterior(theta, x_shift=1.0, x_scale=2.0, y_shift=3.0, y_scale=0.5, hidden=1):
    st = NUTSSettings(hidden=hidden)
    return NUTSPosterior(
        settings=st,
        theta=theta,
        x_shift=torch.tensor([x_shift], dtype=torch.float64),
        x_scale=torch.tensor([x_scale], dtype=torch.float64),
        y_shift=y_shift,
        y_scale=y_scale,
    )


def test_function_draws_apply_the_scaling_of_inputs_and_targets():
    # hidden = 1: theta = [W1, b1, w2, b2, log_sigma]
    theta = torch.tensor([[[2.0, -1.0, 1.5, 0.25, 0.0], [-1.0, 0.5, 2.0, -0.5, 0.0]]], dtype=torch.float64)
    post = _posterior(theta)
    x = torch.tensor([[-3.0], [1.0], [5.0]], dtype=torch.float64)
    f = post.function_draws(x)
    xs = (x[:, 0] - 1.0) / 2.0
    for k, (w1, b1, w2, b2, _) in enumerate(theta[0].tolist()):
        expected = (w2 * torch.relu(w1 * xs + b1) + b2) * 0.5 + 3.0
        torch.testing.assert_close(f[0, k], expected)


def test_predictive_moments_in_closed_form():
    """With W1 = 0 every draw is a constant b2 (plus w2 relu(b1)): mean, epistemic and total variance by hand."""
    gen = torch.Generator().manual_seed(2)
    theta = torch.zeros(3, 40, 5, dtype=torch.float64)
    theta[..., 3] = torch.randn(3, 40, generator=gen, dtype=torch.float64)  # b2
    theta[..., 4] = 0.3 * torch.randn(3, 40, generator=gen, dtype=torch.float64)  # log sigma
    post = _posterior(theta, y_scale=2.0, y_shift=-1.0)
    d = post.predictive(torch.linspace(-2, 2, 7, dtype=torch.float64).reshape(-1, 1))
    b2 = theta[..., 3].reshape(-1)
    sig2 = (2.0 * theta[..., 4].reshape(-1).exp()) ** 2
    mean = -1.0 + 2.0 * b2.mean()
    epi = 4.0 * b2.var(unbiased=False)
    torch.testing.assert_close(d.mean, mean.expand(7))
    torch.testing.assert_close(d.epistemic_variance, epi.expand(7))
    torch.testing.assert_close(d.variance, (epi + sig2.mean()).expand(7))
    torch.testing.assert_close(post.noise_draws(), 2.0 * theta[..., 4].exp())


def test_nuts_posterior_on_a_tiny_sample_reports_its_diagnostics():
    gen = np.random.default_rng(0)
    X = gen.uniform(-1, 1, size=(12, 1))
    y = np.sin(3 * X[:, 0]) + 0.1 * gen.standard_normal(12)
    ticks = []
    st = NUTSSettings(hidden=5, chains=2, warmup=20, samples=15, max_tree_depth=4)
    post = nuts_posterior(X, y, st, seed=1, tick=lambda: ticks.append(1))
    assert len(ticks) == 2 * (20 + 15)
    assert post.theta.shape == (2, 15, st.size(1)) and post.theta.dtype == torch.float64
    diag = post.diagnostics(torch.as_tensor(X))
    assert diag["draws"] == 30 and len(diag["step_size"]) == 2
    assert math.isfinite(diag["f_r_hat_max"]) and diag["f_ess_min"] > 0
    again = nuts_posterior(X, y, st, seed=1)  # seeded: the same draws
    torch.testing.assert_close(again.theta, post.theta)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"hidden": 0}, "hidden"),
        ({"chains": 1}, "chains"),
        ({"warmup": 2.5}, "warmup"),
        ({"samples": -1}, "samples"),
        ({"max_tree_depth": True}, "max_tree_depth"),
        ({"prior_sigma": 0.0}, "prior_sigma"),
        ({"noise_prior": float("nan")}, "noise_prior"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"activation": "gelu"}, "activation"),
    ],
)
def test_settings_reject_bad_values_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NUTSSettings(**kwargs)


def test_nuts_posterior_rejects_bad_data_and_seed():
    X, y = np.zeros((5, 1)), np.zeros(5)
    with pytest.raises(ValueError, match="X must be"):
        nuts_posterior(X, y[:4])
    with pytest.raises(ValueError, match="finite"):
        nuts_posterior(X, np.full(5, np.nan))
    with pytest.raises(ValueError, match="seed"):
        nuts_posterior(X, y, seed=-1)
