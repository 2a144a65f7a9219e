"""Metrics against hand-computed values, properscoring and numerical integration."""

from __future__ import annotations

import math

import numpy as np
import properscoring as ps
import pytest
import torch
from scipy import integrate, stats

from hidlr.uq import GaussianMixture, metrics

D64 = torch.float64


def normal(mu, sd) -> GaussianMixture:
    return GaussianMixture.from_normal(torch.as_tensor(mu, dtype=D64), torch.as_tensor(sd, dtype=D64))


def random_mixture(n: int, k: int, seed: int, spread: float = 2.0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    return GaussianMixture(
        torch.randn(n, k, generator=g, dtype=D64),
        spread * torch.randn(n, k, generator=g, dtype=D64),
        0.05 + torch.rand(n, k, generator=g, dtype=D64),
    )


def test_nll_rmse_mae_by_hand():
    d = normal([0.0, 1.0, -1.0], [1.0, 2.0, 0.5])
    y = np.array([0.0, 3.0, -1.5])
    expected_nll = -np.mean(stats.norm.logpdf(y, [0, 1, -1], [1, 2, 0.5]))
    assert metrics.nll(d, y) == pytest.approx(expected_nll, rel=1e-12)
    assert metrics.nll(d, y) == pytest.approx(
        (
            0.5 * math.log(2 * math.pi)
            + (0.5 * math.log(2 * math.pi) + math.log(2) + 0.5)
            + (0.5 * math.log(2 * math.pi) + math.log(0.5) + 0.5)
        )
        / 3,
        rel=1e-12,
    )
    assert metrics.rmse(d, y) == pytest.approx(math.sqrt((0 + 4 + 0.25) / 3))
    assert metrics.mae(d, y) == pytest.approx((0 + 2 + 0.5) / 3)
    # tensors and columns are accepted alike
    assert metrics.rmse(d, torch.tensor(y).reshape(3, 1)) == metrics.rmse(d, y)


def test_crps_single_gaussian_matches_properscoring():
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=200), rng.uniform(0.1, 3.0, size=200)
    y = rng.normal(size=200) * 2
    d = normal(mu, sd)
    ref = ps.crps_gaussian(y, mu, sd)
    np.testing.assert_allclose(metrics.crps_values(d, y).numpy(), ref, rtol=1e-10, atol=1e-12)
    assert metrics.crps(d, y) == pytest.approx(ref.mean(), rel=1e-10)


def _crps_by_quadrature(w, m, s, y):
    cdf = lambda z: float((w * stats.norm.cdf(z, m, s)).sum())
    lo, hi = min((m - 12 * s).min(), y), max((m + 12 * s).max(), y)
    pts = sorted(set(list(m) + [y]))
    left = integrate.quad(lambda z: cdf(z) ** 2, lo, y, points=[p for p in pts if lo < p < y], limit=500, epsabs=1e-12)[
        0
    ]
    right = integrate.quad(
        lambda z: (1 - cdf(z)) ** 2, y, hi, points=[p for p in pts if y < p < hi], limit=500, epsabs=1e-12
    )[0]
    return left + right


@pytest.mark.parametrize("k", [2, 3, 6])
def test_crps_mixture_matches_numerical_integration(k):
    d = random_mixture(12, k, seed=k)
    y = np.random.default_rng(k).normal(scale=3.0, size=12)
    got = metrics.crps_values(d, y).numpy()
    w, m, s = d.weights.numpy(), d.loc.numpy(), d.scale.numpy()
    ref = np.array([_crps_by_quadrature(w[i], m[i], s[i], y[i]) for i in range(12)])
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)


def test_crps_mixture_matches_properscoring_ensemble_on_quantile_grid():
    # an ensemble at the mixture's quantiles (j - 1/2)/S approximates the mixture to O(1/S)
    d = random_mixture(5, 4, seed=3)
    y = np.random.default_rng(3).normal(size=5)
    S = 1500
    grid = (torch.arange(S, dtype=D64) + 0.5) / S
    members = d.icdf(grid[:, None].expand(S, 5)).numpy().T  # (5, S)
    ref = np.array([ps.crps_ensemble(y[i], members[i]) for i in range(5)])
    np.testing.assert_allclose(metrics.crps_values(d, y).numpy(), ref, rtol=3e-3)


def test_crps_chunking_gives_the_same_answer(monkeypatch):
    d = random_mixture(100, 5, seed=4)
    y = np.random.default_rng(4).normal(size=100)
    whole = metrics.crps_values(d, y)
    monkeypatch.setattr(metrics, "_CRPS_CHUNK", 170)  # 17 rows (10 pairs each) per chunk
    torch.testing.assert_close(metrics.crps_values(d, y), whole)


def test_crps_float32_agrees_with_float64():
    d = random_mixture(300, 4, seed=9)
    y = np.random.default_rng(9).normal(size=300)
    d32 = GaussianMixture(d.logits.float(), d.loc.float(), d.scale.float())
    np.testing.assert_allclose(
        metrics.crps_values(d32, y).numpy(), metrics.crps_values(d, y).numpy(), rtol=1e-4, atol=1e-5
    )


def test_coverage_matches_quantile_intervals():
    d = random_mixture(400, 3, seed=5)
    y = d.sample(generator=torch.Generator().manual_seed(5))
    for level in (0.5, 0.8, 0.9):
        lo, hi = d.interval(level)
        direct = ((y >= lo) & (y <= hi)).double().mean().item()
        assert metrics.coverage(d, y, level) == pytest.approx(direct)
        # its own samples are covered at about the nominal rate
        assert abs(direct - level) < 4 * math.sqrt(level * (1 - level) / 400)
    # hand case: standard normal, y at +-0.5 and +-2: the 90% interval is +-1.645
    d1 = normal([0.0] * 4, [1.0] * 4)
    assert metrics.coverage(d1, [0.5, -0.5, 2.0, -2.0], 0.9) == 0.5


def test_interval_width_by_hand():
    d = normal([0.0, 5.0], [1.0, 3.0])
    z = stats.norm.ppf(0.95)
    assert metrics.interval_width(d, 0.9) == pytest.approx(2 * z * (1.0 + 3.0) / 2, rel=1e-10)


def test_pit_calibration_and_reliability_by_hand():
    u = np.array([0.04, 0.15, 0.3, 0.45, 0.55, 0.7, 0.85, 0.96])
    d = normal(np.zeros(8), np.ones(8))
    y = stats.norm.ppf(u)
    np.testing.assert_allclose(metrics.pit(d, y).numpy(), u, rtol=1e-12)
    exp, obs = metrics.reliability(d, y, levels=[0.1, 0.5, 0.9])
    np.testing.assert_allclose(exp, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(obs, [1 / 8, 4 / 8, 7 / 8])
    assert metrics.calibration_error(d, y, levels=[0.1, 0.5, 0.9]) == pytest.approx((0.025 + 0.0 + 0.025) / 3)
    # central intervals: [0.25, 0.75] in PIT holds 4 of 8, [0.05, 0.95] holds 6 of 8
    _, obs_c = metrics.reliability(d, y, levels=[0.5, 0.9], kind="central")
    np.testing.assert_allclose(obs_c, [4 / 8, 6 / 8])
    # an overconfident model (true sd 2, predicted sd 1) has a large calibration error
    rng = np.random.default_rng(0)
    y_wide = rng.normal(scale=2.0, size=4000)
    d_many = normal(np.zeros(4000), np.ones(4000))
    assert metrics.calibration_error(d_many, y_wide) > 0.1
    d_true = normal(np.zeros(4000), 2 * np.ones(4000))
    assert metrics.calibration_error(d_true, y_wide) < 0.02


def test_kl_to_truth_matches_gaussian_closed_form():
    rng = np.random.default_rng(1)
    n = 100_000
    y = rng.normal(size=n)  # truth N(0, 1)
    true_lp = stats.norm.logpdf(y)
    d = normal(np.full(n, 0.5), np.full(n, 1.5))
    exact = math.log(1.5) + (1 + 0.25) / (2 * 1.5**2) - 0.5
    est = metrics.kl_to_truth_estimate(d, y, true_lp)
    assert est.n == n and 0 < est.stderr < 0.01
    assert abs(est.value - exact) < 4 * est.stderr
    assert metrics.kl_to_truth(d, y, true_lp) == est.value == float(est)
    # the truth itself has zero KL, exactly
    assert metrics.kl_to_truth(normal(np.zeros(n), np.ones(n)), y, true_lp) == pytest.approx(0.0, abs=1e-12)


def test_evaluate_collects_everything():
    d = random_mixture(50, 2, seed=6)
    y = d.sample(generator=torch.Generator().manual_seed(6))
    out = metrics.evaluate(d, y, levels=(0.9,))
    assert out["crps"] == metrics.crps(d, y)
    assert out["coverage@0.9"] == metrics.coverage(d, y, 0.9)
    assert out["width@0.9"] == metrics.interval_width(d, 0.9)


def test_errors():
    d = normal([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="3 inputs"):
        metrics.nll(d, [0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.crps(d, [0.0, math.nan, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.rmse(d, torch.tensor([0.0, math.inf, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        metrics.mae(d, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        metrics.nll(d, [])
    with pytest.raises(ValueError, match="GaussianMixture"):
        metrics.nll(object(), [0.0, 1.0, 2.0])
    for bad in (0.0, -0.1, 1.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="level"):
            metrics.coverage(d, [0.0, 1.0, 2.0], bad)
        with pytest.raises(ValueError, match="level"):
            metrics.interval_width(d, bad)
    with pytest.raises(ValueError, match="level"):
        metrics.calibration_error(d, [0.0, 1.0, 2.0], levels=[0.5, 1.0])
    with pytest.raises(ValueError, match="levels"):
        metrics.reliability(d, [0.0, 1.0, 2.0], levels=[])
    with pytest.raises(ValueError, match="kind"):
        metrics.reliability(d, [0.0, 1.0, 2.0], kind="bogus")
    with pytest.raises(ValueError, match="true_log_prob"):
        metrics.kl_to_truth(d, [0.0, 1.0, 2.0], [0.0, math.nan, 0.0])
    with pytest.raises(ValueError, match="true_log_prob"):
        metrics.kl_to_truth(d, [0.0, 1.0, 2.0], [0.0, 0.0])
