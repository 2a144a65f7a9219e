"""Post-hoc variance scaling: the dilated law against closed forms and SciPy, the fitted factor
against its closed form, the leave-one-out rows against a brute-force search, coverage on a task
with a known truth, and the default fits that use it."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hidlr.uq.data.synthetic import Heteroscedastic
from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import MDN, DeepEnsemble, MCDropout, MDNEnsemble
from hidlr.uq.models.scaling import ScaledNet
from hidlr.uq.models.spread import CrossFittedRows, cross_fitted_correction, dilate, fit_spread

Z90 = stats.norm.ppf(0.95)


def _mixture(n: int = 6, k: int = 3, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    return GaussianMixture(
        torch.randn(n, k, generator=g, dtype=torch.float64),
        2 * torch.randn(n, k, generator=g, dtype=torch.float64),
        0.2 + torch.rand(n, k, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize("factor", [0.3, 1.0, 2.5])
def test_dilated_density_is_the_change_of_variable_of_the_original(factor):
    dist = _mixture()
    y = torch.linspace(-4, 4, 6, dtype=torch.float64)
    m = dist.mean
    expected = dist.log_prob(m + (y - m) / factor) - math.log(factor)
    out = dilate(dist, factor)
    torch.testing.assert_close(out.log_prob(y), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.mean, m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.variance, factor**2 * dist.variance, rtol=1e-10, atol=1e-12)
    # a single Gaussian: N(mu, (factor * sigma)^2) exactly (SciPy)
    f64 = torch.float64
    g = dilate(GaussianMixture.from_normal(torch.tensor([0.5], dtype=f64), torch.tensor([0.7], dtype=f64)), factor)
    assert float(g.log_prob(torch.tensor([1.3], dtype=f64))) == pytest.approx(
        stats.norm(0.5, 0.7 * factor).logpdf(1.3), rel=1e-12
    )


def test_the_fitted_factor_of_a_gaussian_is_the_root_mean_square_z_score():
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=200), rng.uniform(0.5, 2, size=200)
    y = mu + 1.7 * sd * rng.normal(size=200)
    dist = GaussianMixture.from_normal(torch.as_tensor(mu), torch.as_tensor(sd))
    closed = math.sqrt(np.mean(((y - mu) / sd) ** 2))
    assert fit_spread(dist, torch.as_tensor(y), prior_sd=None) == pytest.approx(closed, rel=1e-5)
    shrunk = fit_spread(dist, torch.as_tensor(y))  # the prior pulls log s towards 0, a little
    assert 1.0 < shrunk < closed and shrunk == pytest.approx(closed, rel=0.05)


def test_the_fitted_factor_of_a_mixture_maximises_the_penalised_likelihood():
    dist = _mixture(n=50, seed=1)
    y = dilate(dist, 1.8).sample(generator=torch.Generator().manual_seed(2))

    def objective(s):
        return float(dilate(dist, s).log_prob(y).sum()) - math.log(s) ** 2 / (2 * 0.35**2)

    s = fit_spread(dist, y)
    assert objective(s) >= max(objective(s * 1.01), objective(s / 1.01))


def test_bad_inputs_are_refused_by_name():
    dist = _mixture()
    with pytest.raises(ValueError, match="factor"):
        dilate(dist, 0.0)
    with pytest.raises(ValueError, match="rows"):
        fit_spread(dist, torch.zeros(5))
    with pytest.raises(ValueError, match="prior_sd"):
        fit_spread(dist, torch.zeros(6), prior_sd=0.0)
    with pytest.raises(TypeError, match="variance_scaling"):
        MDN(variance_scaling="yes").fit(np.zeros((40, 1)), np.arange(40.0))
    ens = DeepEnsemble(MDN(1), members=2, variance_scaling=1)
    with pytest.raises(TypeError, match="variance_scaling"):
        ens.fit(np.zeros((40, 1)), np.arange(40.0))
    assert not hasattr(ens, "estimators_")


@pytest.mark.parametrize("wrong", [0.5, 2.0])
def test_scaling_a_misstated_truth_on_held_out_rows_restores_coverage(wrong):
    """The true law of a heteroscedastic task with its scale misstated by ``wrong``: after the
    factor fitted on 1000 held-out rows, the 90% intervals cover the test rows within the band that
    the test draw and the factor's sampling error allow (3 standard errors)."""
    task = Heteroscedastic()

    def stated(x):
        x = x.numpy()[:, 0]
        return GaussianMixture.from_normal(torch.as_tensor(task.mean_fn(x)), wrong * torch.as_tensor(task.sd_fn(x)))

    (xv, yv), (xt, yt) = task.sample(1000, seed=1), task.sample(4000, seed=2)
    s = fit_spread(stated(xv), yv)
    assert s == pytest.approx(1 / wrong, rel=0.1)
    lo, hi = dilate(stated(xt), s).interval(0.9)
    cov = float(((yt >= lo) & (yt <= hi)).double().mean())
    slope = 2 * Z90 * stats.norm.pdf(Z90)  # d coverage / d log s at the truth
    se = math.sqrt(0.9 * 0.1 / 4000 + slope**2 / (2 * 1000))
    assert abs(cov - 0.9) < 3 * se
    raw_lo, raw_hi = stated(xt).interval(0.9)
    assert abs(float(((yt >= raw_lo) & (yt <= raw_hi)).double().mean()) - 0.9) > 0.05  # it was off


def test_the_spread_travels_with_the_module_and_old_modules_load():
    task = Heteroscedastic()
    x, y = task.sample(300, seed=0)
    m = MDN(2, hidden=(16,), epochs=30, random_state=0).fit(x.numpy(), y.numpy())
    assert m.spread_ == float(m.module_.spread) != 1.0
    state = m.module_.state_dict()
    assert state["spread"].dtype == torch.float64
    scaling = {k: state[k] for k in ("x_shift", "x_scale", "y_shift", "y_scale")}
    fresh = ScaledNet(MDN(2, hidden=(16,)).build(1, y, 270), scaling)
    fresh.set_snapshots([MDN(2, hidden=(16,)).build(1, y, 270) for _ in m.module_.snapshots])
    fresh.load_state_dict(state)
    xt = x[:7].numpy()
    torch.testing.assert_close(fresh(xt).log_prob(y[:7]), m.predict_proba(xt).log_prob(y[:7]))
    old = {k: v for k, v in state.items() if k != "spread"}  # saved before the spread existed
    fresh.load_state_dict(old)
    assert float(fresh.spread) == 1.0


def test_cross_fitted_rows_are_each_rows_predictive_at_the_epoch_the_other_rows_chose():
    n, epochs = 7, 9
    y = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dists = [_mixture(n, 2, seed=e) for e in range(epochs)]
    log_probs = [d.log_prob(y) for d in dists]
    log_probs[4] = log_probs[4].clone()
    log_probs[4][2] = -math.inf  # an epoch where row 2 alone is not finite
    cross = CrossFittedRows(y)
    for d, lp in zip(dists, log_probs):
        cross.update(d, lp)
    left_out, chosen, y_kept = cross.rows()
    assert torch.equal(y_kept, y)
    lp = torch.stack(log_probs).numpy()  # (epochs, n)
    whole = -lp.mean(axis=1)
    whole[~np.isfinite(whole)] = np.inf
    best = dists[int(np.argmin(whole))]  # the whole part's choice, as early stopping's
    assert all(torch.equal(getattr(chosen, f), getattr(best, f)) for f in ("logits", "loc", "scale"))
    for i in range(n):
        others = -np.delete(lp, i, axis=1).mean(axis=1)
        others[~np.isfinite(others)] = np.inf
        e = int(np.argmin(others))  # the first epoch of the lowest value, as a strict "<" keeps
        assert i != 2 or np.isfinite(others[4])  # row 2's complement is finite at epoch 4
        for field in ("logits", "loc", "scale"):
            assert torch.equal(getattr(left_out, field)[i], getattr(dists[e], field)[i]), (i, e, field)
    expected = fit_spread(left_out, y) / fit_spread(chosen, y)
    assert cross_fitted_correction(left_out, chosen, y) == pytest.approx(expected, rel=1e-12)
    assert cross_fitted_correction(chosen, chosen, y) == 1.0


def test_cross_fitted_rows_need_two_rows_and_a_finite_epoch():
    one = CrossFittedRows(torch.zeros(1, dtype=torch.float64))
    one.update(_mixture(1), torch.zeros(1, dtype=torch.float64))
    assert one.rows() is None
    never = CrossFittedRows(torch.zeros(3, dtype=torch.float64))
    never.update(_mixture(3), torch.full((3,), -math.inf, dtype=torch.float64))
    assert never.rows() is None


@pytest.mark.parametrize(
    ("make", "moves"),
    [
        (lambda **kw: MDN(2, hidden=(16,), epochs=30, random_state=1, snapshots=1, **kw), True),
        (lambda **kw: MDNEnsemble(2, 2, hidden=(16,), epochs=30, random_state=1, snapshots=1, **kw), True),
        # a stochastic net: no correction (its validation scores are Monte Carlo draws)
        (lambda **kw: MCDropout(hidden=(16,), epochs=60, random_state=1, **kw), False),
        # a mixture of snapshots (the default MDN): no correction
        (lambda **kw: MDN(2, hidden=(16,), epochs=30, random_state=1, **kw), False),
    ],
    ids=["mdn", "mdn_ensemble", "mc_dropout", "mdn_snapshots"],
)
def test_an_early_stopped_deterministic_fit_corrects_its_factors_by_the_cross_fitted_rows(make, moves, monkeypatch):
    x, y = Heteroscedastic().sample(200, seed=3)
    X, Y = x.numpy(), y.numpy()
    real = cross_fitted_correction
    fits = {}
    for name, correction in [("real", None), ("1", 1.0), ("2", 2.0)]:
        calls: list[float] = []

        def recording(*args, value=correction, calls=calls):
            calls.append(real(*args) if value is None else value)
            return calls[-1]

        for module in ("estimator", "ensemble"):
            monkeypatch.setattr(f"hidlr.uq.models.{module}.cross_fitted_correction", recording)
        est = make().fit(X, Y)
        fits[name] = ([m.spread_ for m in getattr(est, "estimators_", [est])], calls)
    spreads, calls = fits["real"]
    if not moves:
        assert not calls and fits["2"][0] == fits["1"][0] == spreads
        return
    assert len(calls) == len(spreads) + (len(spreads) > 1)  # each member's, then the whole mixture's
    assert any(c != 1.0 for c in calls)  # the optimism is there to correct
    # the same training, the factor of each member multiplied by exactly the correction
    assert fits["2"][0] == pytest.approx([2 * f for f in fits["1"][0]], rel=1e-9)
    assert fits["real"][0] == pytest.approx([c * f for c, f in zip(calls, fits["1"][0])], rel=1e-9)


def test_refit_keeps_the_factor_fitted_before_it():
    task = Heteroscedastic()
    x, y = task.sample(200, seed=3)
    # a refit trains one net, so its factor is that of the best epoch's net alone (no snapshots)
    held = MDN(2, hidden=(16,), epochs=20, random_state=1, snapshots=1).fit(x.numpy(), y.numpy())
    refit = MDN(2, hidden=(16,), epochs=20, random_state=1, refit=True).fit(x.numpy(), y.numpy())
    assert refit.spread_ == pytest.approx(held.spread_, rel=1e-12)
    off = MDN(2, hidden=(16,), epochs=20, random_state=1, variance_scaling=False).fit(x.numpy(), y.numpy())
    assert off.spread_ == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: MDN(random_state=0),
        lambda: MDNEnsemble(components=2, members=3, random_state=0),
        lambda: DeepEnsemble(MDN(components=1), members=3, random_state=0),
        lambda: DeepEnsemble(MDN(components=1), members=3, random_state=0, variance_scaling=False),
    ],
    ids=["mdn", "mdn_ensemble", "deep_ensemble", "deep_ensemble_unscaled"],
)
def test_default_fits_cover_a_heteroscedastic_truth_at_the_nominal_rate(make):
    """Default fits on 400 rows of a heteroscedastic task; 90% intervals on 4000 test rows cover
    between 85% and 95% (the default-fit goal; the test draw alone has a standard error of 0.5%)."""
    task = Heteroscedastic()
    (x, y), (xt, yt) = task.sample(400, seed=4), task.sample(4000, seed=5)
    model = make().fit(x.numpy(), y.numpy())
    frame = model.predict_interval(xt.numpy(), coverage=0.9)
    lo, hi = frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].to_numpy()
    cov = float(np.mean((yt.numpy() >= lo) & (yt.numpy() <= hi)))
    assert 0.85 <= cov <= 0.95
    if isinstance(model, DeepEnsemble):
        # the mixture's own factor, fitted on the shared rows, only when asked for
        assert (model.spread_ != 1.0) == model.variance_scaling
        assert all(est.spread_ != 1.0 for est in model.estimators_)
