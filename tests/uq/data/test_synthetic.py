"""Synthetic tasks: true densities integrate to 1, CDFs match them, samplers match both."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hidlr.uq import metrics
from hidlr.uq.data import TASKS, BishopInverse, get_task

NAMES = sorted(TASKS)
X_POINTS = {
    "bimodal": [-0.9, -0.2, 0.0, 0.5, 1.0],
    "heteroscedastic": [-1.0, -0.3, 0.0, 0.7],
    "gap": [-0.8, 0.0, 0.75, 1.4],
    "bishop": [-0.05, 0.1, 0.45, 0.5, 0.6, 0.95, 1.08],
}


def _integral(task, x: float, lo: float, hi: float) -> float:
    """``int_lo^hi p0(y | x) dy``: adaptive quadrature, or exact for Bishop's piecewise-constant law."""
    if isinstance(task, BishopInverse):
        # constant between the support's endpoints: length times the density at each midpoint
        iv = task.intervals(np.array([x]))[0].ravel()
        edges = np.unique(np.clip(np.concatenate([[lo, hi], iv]), lo, hi))
        mids = 0.5 * (edges[1:] + edges[:-1])
        dens = task.log_prob(np.full_like(mids, x), mids).exp().numpy()
        return float((dens * np.diff(edges)).sum())
    f = lambda y: math.exp(task.log_prob([x], [y])[0].item())
    return integrate.quad(f, lo, hi, limit=400, epsabs=1e-12)[0]


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one_and_cdf_is_its_integral(name):
    task = get_task(name)
    for x in X_POINTS[name]:
        lo, hi = (-0.05, 1.05) if name == "bishop" else (-8.0, 8.0)
        assert _integral(task, x, lo, hi) == pytest.approx(1.0, abs=1e-8), (name, x)
        for y in np.linspace(lo + 0.3, hi - 0.3, 4) if name != "bishop" else (0.2, 0.4, 0.55, 0.8):
            part = _integral(task, x, lo, y)
            assert task.cdf([x], [y])[0].item() == pytest.approx(part, abs=1e-8), (name, x, y)


@pytest.mark.parametrize("name", NAMES)
def test_joint_samples_have_uniform_conditional_pit(name):
    # The samplers draw (x, y) jointly; the true conditional CDF must map y to U(0, 1).
    task = get_task(name)
    x, y = task.sample(4000, seed=1)
    assert x.shape == (4000, 1) and y.shape == (4000,) and x.dtype == torch.float64
    u = task.cdf(x, y).numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert np.all(np.isfinite(task.log_prob(x, y).numpy()))


@pytest.mark.parametrize("name", NAMES)
def test_conditional_sampler_matches_cdf_at_fixed_x(name):
    task = get_task(name)
    for x0 in X_POINTS[name][:3]:
        xs = torch.full((3000, 1), x0, dtype=torch.float64)
        y = task.sample_y(xs, seed=2)
        u = task.cdf(xs, y).numpy()
        assert stats.kstest(u, "uniform").pvalue > 1e-3, (name, x0)


@pytest.mark.parametrize("name", NAMES)
def test_sampling_is_reproducible_and_x_follows_its_law(name):
    task = get_task(name)
    a, b = task.sample(50, seed=3), task.sample(50, seed=3)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert not torch.equal(task.sample(50, seed=4)[1], a[1])
    assert task.sample()[0].shape[0] == task.default_n
    x = task.sample_x(2000, seed=5).numpy()[:, 0]
    lo, hi = task.x_range
    assert np.all((x > lo) & (x < hi))


def test_gap_inputs_avoid_the_gap_and_x_laws_match():
    x = get_task("gap").sample_x(2000, seed=0).numpy()[:, 0]
    assert np.all(np.abs(x) >= 0.5) and np.all(np.abs(x) <= 1.0)
    assert abs((x > 0).mean() - 0.5) < 0.05
    xb = get_task("bimodal").sample_x(4000, seed=0).numpy()[:, 0]
    assert stats.kstest(xb, stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_bishop_support_measure_against_a_fine_grid():
    task = BishopInverse()
    t = (np.arange(2_000_000) + 0.5) / 2_000_000
    g = task.g(t)
    for x in (-0.05, 0.2, 0.45, 0.5, 0.55, 0.8, 1.05):
        brute = (np.abs(x - g) <= 0.1).mean()
        assert task.support_measure([x])[0].item() == pytest.approx(brute, abs=2e-6)
    # three branches in the middle, one at the ends
    iv = task.intervals(np.array([0.5, 0.05]))
    assert np.sum(iv[0, :, 1] > iv[0, :, 0]) == 3
    assert np.sum(iv[1, :, 1] > iv[1, :, 0]) == 1
    # outside the support: -inf; inside: -log |A(x)|
    m = task.support_measure([0.5])[0].item()
    assert task.log_prob([0.5], [0.5])[0].item() == pytest.approx(-math.log(m))
    assert task.log_prob([0.05], [0.9])[0].item() == -math.inf


def test_heteroscedastic_and_bimodal_closed_forms():
    h = get_task("heteroscedastic")
    x, y = np.array([0.3, -0.8]), np.array([0.1, -0.2])
    ref = stats.norm.logpdf(y, np.sin(2.5 * x) + 0.5 * x, 0.05 + 0.4 * x**2)
    np.testing.assert_allclose(h.log_prob(x, y).numpy(), ref, rtol=1e-12)
    b = get_task("bimodal")
    sd = 0.05 + 0.1 * np.abs(x)
    ref = np.log(0.5 * stats.norm.pdf(y, np.sin(3 * x), sd) + 0.5 * stats.norm.pdf(y, -np.sin(3 * x), sd))
    np.testing.assert_allclose(b.log_prob(x, y).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["bimodal", "heteroscedastic", "gap"])
def test_true_distribution_is_the_oracle(name):
    task = get_task(name)
    x, y = task.sample(500, seed=7)
    truth = task.true_distribution(x)
    torch.testing.assert_close(truth.log_prob(y), task.log_prob(x, y))
    torch.testing.assert_close(truth.cdf(y), task.cdf(x, y))
    assert metrics.kl_to_truth(truth, y, task.log_prob(x, y)) == pytest.approx(0.0, abs=1e-12)


def test_bishop_has_no_mixture_oracle():
    with pytest.raises(NotImplementedError, match="not a Gaussian mixture"):
        get_task("bishop").true_distribution([0.5])


def test_errors():
    task = get_task("bimodal")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("nope")
    with pytest.raises(ValueError, match="positive int"):
        task.sample(0)
    with pytest.raises(ValueError, match="different lengths"):
        task.log_prob(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        task.log_prob([0.0, math.nan], [0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        task.cdf([0.0], [math.inf])
    with pytest.raises(ValueError, match="shape"):
        task.sample_y(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        task.sample_y(np.zeros(0))
    with pytest.raises(ValueError, match="input range"):
        get_task("bishop").log_prob([1.5], [0.5])
