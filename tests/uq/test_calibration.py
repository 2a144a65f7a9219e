"""Conformal intervals and PIT recalibration: coverage within the binomial band, exact ranks."""

import math

import numpy as np
import pytest
import torch

from hidlr.uq import GaussianMixture
from hidlr.uq.calibration import (
    ConformalPIT,
    ConformalQuantile,
    PITRecalibration,
    conformal_rank,
)

CALIBRATORS = [ConformalPIT, ConformalQuantile, PITRecalibration]


def _task(n, seed):
    """Heteroscedastic truth and three miscalibrated predictive distributions of it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    sd = 0.1 + 0.3 * x.abs()
    y = torch.sin(3 * x) + sd * torch.randn(n, generator=g, dtype=torch.float64)
    models = {
        "overconfident, biased": GaussianMixture.from_normal(torch.sin(3 * x) + 0.1, 0.5 * sd),
        "underconfident": GaussianMixture.from_normal(torch.sin(3 * x), 2.0 * sd),
        "bimodal around a unimodal truth": GaussianMixture(
            torch.zeros(n, 2, dtype=torch.float64),
            torch.stack([torch.sin(3 * x) - 2 * sd, torch.sin(3 * x) + 2 * sd], 1),
            torch.stack([0.3 * sd, 0.3 * sd], 1),
        ),
    }
    return y, models


def band(coverage, n_cal, n_test, sigmas=4.0):
    """Half-width of the band: the spread of the coverage given the calibration set (Beta) plus the
    test set's binomial spread."""
    return sigmas * math.sqrt(coverage * (1 - coverage) * (1 / (n_cal + 2) + 1 / n_test))


@pytest.mark.parametrize("calibrator", CALIBRATORS)
@pytest.mark.parametrize("model", ["overconfident, biased", "underconfident", "bimodal around a unimodal truth"])
def test_held_out_coverage_is_within_the_band(calibrator, model):
    n_cal, n_test = 1000, 8000
    y, models = _task(n_cal + n_test, seed=3)
    dist = models[model]
    cal = calibrator().fit(dist[:n_cal], y[:n_cal])
    raw_far = False
    for c in (0.5, 0.8, 0.9, 0.95):
        lo, hi = cal.interval(dist[n_cal:], c)
        cov = float(((y[n_cal:] >= lo) & (y[n_cal:] <= hi)).double().mean())
        upper = c + (2 if calibrator is PITRecalibration else 1) / (n_cal + 1)
        assert c - band(c, n_cal, n_test) <= cov <= upper + band(c, n_cal, n_test), (model, c, cov)
        rlo, rhi = dist[n_cal:].interval(c)
        raw = float(((y[n_cal:] >= rlo) & (y[n_cal:] <= rhi)).double().mean())
        raw_far |= abs(raw - c) > 3 * band(c, n_cal, n_test)
    assert raw_far  # the raw intervals were off: the calibration did the work


@pytest.mark.parametrize("calibrator", CALIBRATORS)
def test_marginal_coverage_over_many_small_calibration_sets(calibrator):
    """With 19 calibration rows the guarantee is exact: a new row is covered with probability
    18/20 = 0.9 for all three (equal-tailed ranks 1 and 19 for the recalibration)."""
    blocks, m = 400, 20
    y, models = _task(blocks * m, seed=5)
    dist = models["overconfident, biased"]
    hits = 0
    for b in range(blocks):
        s = b * m
        lo, hi = calibrator().fit(dist[s : s + m - 1], y[s : s + m - 1]).interval(dist[s + m - 1 : s + m], 0.9)
        hits += bool((y[s + m - 1] >= lo[0]) & (y[s + m - 1] <= hi[0]))
    assert abs(hits / blocks - 0.9) <= 4 * math.sqrt(0.09 / blocks)


def test_ranks_and_recalibrated_distribution_against_hand_computed_values():
    assert conformal_rank(19, 0.9) == 18 and conformal_rank(9, 0.95) == 10 and conformal_rank(99, 0.9) == 90
    with pytest.raises(ValueError, match="coverage"):
        conformal_rank(10, 1.0)
    # a standard normal model and calibration targets with PITs 0.1, 0.2, ..., 0.9 (n = 9)
    from scipy import stats

    p = np.arange(1, 10) / 10
    y = torch.as_tensor(stats.norm.ppf(p))
    dist = GaussianMixture.from_normal(torch.zeros(9, dtype=torch.float64), torch.ones(9, dtype=torch.float64))
    rec = PITRecalibration().fit(dist, y)
    np.testing.assert_allclose(
        rec.recalibrate(torch.tensor([0.1, 0.15, 0.9, 0.95])).numpy(), [0.1, 0.15, 0.9, 0.95], atol=1e-12
    )  # knots (k/10, k/10): identity
    one = dist[:1]
    d = rec.distribution(one)
    np.testing.assert_allclose(d.cdf(torch.tensor([0.3])).numpy(), stats.norm.cdf(0.3), atol=1e-12)
    np.testing.assert_allclose(d.log_prob(torch.tensor([0.3])).numpy(), stats.norm.logpdf(0.3), atol=1e-10)
    # equal-tailed 80% interval from ranks floor(10 * 0.1) = 1 and ceil(10 * 0.9) = 9: PITs 0.1 and 0.9
    lo, hi = rec.interval(one, 0.8)
    np.testing.assert_allclose([float(lo[0]), float(hi[0])], stats.norm.ppf([0.1, 0.9]), atol=1e-9)
    # conformal PIT: scores |2p - 1| sorted 0, .2, .2, .4, .4, .6, .6, .8, .8; rank ceil(10 * 0.5) = 5 -> 0.4
    assert ConformalPIT().fit(dist, y).level(0.5) == pytest.approx(0.4)
    # too few rows for 95%: rank 10 > 9, the interval is the whole line
    lo, hi = ConformalPIT().fit(dist, y).interval(one, 0.95)
    assert lo[0] == -math.inf and hi[0] == math.inf
    with pytest.raises(ValueError, match="calibration targets"):
        PITRecalibration().fit(dist, y[:3])


def _recalibration_with_pits_at_the_edges():
    """20 standard normal rows; calibration PITs that round to 1 (y = 10) and to 0 (y = -40), and a tie."""
    g = GaussianMixture.from_normal(torch.zeros(20, dtype=torch.float64), torch.ones(20, dtype=torch.float64))
    y_cal = np.random.default_rng(1).normal(size=20)
    y_cal[0], y_cal[1], y_cal[2] = 10.0, -40.0, y_cal[3]
    return g, y_cal, PITRecalibration().fit(g, y_cal)


def test_pits_that_round_to_0_or_1_keep_the_density_finite_and_normalised():
    from scipy import integrate, stats

    g, _, rec = _recalibration_with_pits_at_the_edges()
    assert float(rec.pit_[-1]) == 1.0 and float(rec.pit_[0]) == 0.0  # the intervals keep the raw PITs
    assert np.all(np.diff(rec.knots_p_) > 0) and np.all(np.diff(rec.knots_r_) > 0)  # strictly increasing
    rd = rec.distribution(g[:1])
    far = torch.tensor([-40.0, -9.0, 9.0, 40.0], dtype=torch.float64)[:, None]
    assert torch.isfinite(rd.log_prob(far)).all() and torch.isfinite(rd.mean).all()
    # y = 9 lies in the top segment, from (1 - eps, 20/21) to (1, 1): slope (1/21) / eps
    eps = math.sqrt(torch.finfo(torch.float64).eps)
    expected = math.log(1 / 21 / eps) + stats.norm.logpdf(9.0)
    assert float(rd.log_prob(torch.tensor([9.0], dtype=torch.float64))[0]) == pytest.approx(expected, rel=1e-9)
    # the density integrates to 1, segment by segment between the knots' quantiles
    edges = g[:1].icdf(torch.as_tensor(rec.knots_p_)[:, None])[:, 0].tolist()

    def density(t):
        return math.exp(float(rd.log_prob(torch.tensor([t], dtype=torch.float64))[0]))

    total = sum(integrate.quad(density, a, b, epsabs=1e-13, epsrel=1e-11)[0] for a, b in zip(edges, edges[1:]))
    assert total == pytest.approx(1.0, abs=1e-8)


def test_recalibrated_quantiles_and_maps_take_scalars_like_the_mixture():
    g, _, rec = _recalibration_with_pits_at_the_edges()
    rd = rec.distribution(g)
    full = rd.icdf(torch.full((20,), 0.5, dtype=torch.float64))
    for q in (0.5, torch.tensor(0.5), np.float64(0.5)):
        out = rd.icdf(q)
        assert out.shape == g.icdf(q).shape == (20,)
        torch.testing.assert_close(out, full)
    assert rec.recalibrate(torch.tensor(0.3)).shape == () and rec.inverse(0.3).shape == ()
    assert float(rec.inverse(rec.recalibrate(torch.tensor(0.3, dtype=torch.float64)))) == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("calibrator", CALIBRATORS)
def test_calibrator_input_errors_name_the_problem(calibrator):
    from sklearn.exceptions import NotFittedError

    g, y_cal, _ = _recalibration_with_pits_at_the_edges()
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(dist_cal, y_cal\)"):
        calibrator().interval(g, 0.9)
    with pytest.raises(ValueError, match=r"y_cal must have shape \(n,\) or \(n, 1\), got \(10, 2\)"):
        calibrator().fit(g, np.zeros((10, 2)))
    with pytest.raises(TypeError, match="dist must be a predictive distribution"):
        calibrator().fit(None, y_cal)
    fitted = calibrator().fit(g, y_cal[:, None])  # a column is read as (n,)
    for name in ("scores_", "y_cal_", "pit_"):
        if hasattr(fitted, name):
            torch.testing.assert_close(getattr(fitted, name), getattr(calibrator().fit(g, y_cal), name))
    for level in ("0.9", None, [0.9]):
        with pytest.raises(TypeError, match="coverage must be a number"):
            fitted.interval(g, level)
    with pytest.raises(TypeError, match="dist must be a predictive distribution"):
        fitted.interval(None, 0.9)
