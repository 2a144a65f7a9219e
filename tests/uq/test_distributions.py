"""GaussianMixture against SciPy, closed forms and large samples, in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from hidlr.uq import GaussianMixture

D64 = torch.float64


def random_mixture(
    n: int, k: int, seed: int, spread: float = 3.0, members: int = 1, min_scale: float = 0.05
) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=D64)
    loc = spread * torch.randn(n, k, generator=g, dtype=D64)
    scale = min_scale + torch.rand(n, k, generator=g, dtype=D64)
    return GaussianMixture(logits, loc, scale, members=members)


def scipy_pdf_cdf(d: GaussianMixture, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w, m, s = d.weights.numpy(), d.loc.numpy(), d.scale.numpy()
    pdf = (w * stats.norm.pdf(y[..., None], m, s)).sum(-1)
    cdf = (w * stats.norm.cdf(y[..., None], m, s)).sum(-1)
    return pdf, cdf


# Hard cases: far-apart components, a very narrow one, and tiny weights.
HARD = GaussianMixture(
    torch.log(torch.tensor([[0.5, 0.5], [0.01, 0.99], [0.3, 0.7], [1e-6, 1 - 1e-6]], dtype=D64)),
    torch.tensor([[-1000.0, 1000.0], [0.0, 1e-3], [5.0, -5.0], [0.0, 50.0]], dtype=D64),
    torch.tensor([[1.0, 1.0], [1e-6, 1.0], [1e-5, 3.0], [2.0, 1e-4]], dtype=D64),
)


def test_log_prob_and_cdf_match_scipy():
    d = random_mixture(50, 4, seed=0)
    y = np.random.default_rng(0).normal(0, 4, size=50)
    pdf, cdf = scipy_pdf_cdf(d, y)
    np.testing.assert_allclose(d.log_prob(torch.from_numpy(y)).numpy(), np.log(pdf), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.cdf(torch.from_numpy(y)).numpy(), cdf, rtol=1e-12, atol=1e-14)


def test_log_prob_broadcasts_over_sample_dims_and_columns():
    d = random_mixture(7, 3, seed=1)
    y = torch.randn(5, 2, 7, dtype=D64)
    lp = d.log_prob(y)
    assert lp.shape == (5, 2, 7)
    pdf, _ = scipy_pdf_cdf(d, y.numpy())
    np.testing.assert_allclose(lp.numpy(), np.log(pdf), rtol=1e-12)
    y1 = torch.randn(7, dtype=D64)
    torch.testing.assert_close(d.log_prob(y1.reshape(7, 1)), d.log_prob(y1))
    torch.testing.assert_close(d.cdf(y1.reshape(7, 1)), d.cdf(y1))
    # a scalar broadcasts to every input
    torch.testing.assert_close(d.log_prob(0.5), d.log_prob(torch.full((7,), 0.5, dtype=D64)))


def test_cdf_keeps_relative_accuracy_in_the_lower_tail():
    d = random_mixture(3, 3, seed=13)
    y = d.loc.min(-1).values - 9.0 * d.scale.max(-1).values  # CDF around 1e-19 or smaller
    _, ref = scipy_pdf_cdf(d, y.numpy())
    assert np.all(ref > 0)
    np.testing.assert_allclose(d.cdf(y).numpy(), ref, rtol=1e-10)
    q = torch.tensor([1e-15, 1e-30, 1e-100], dtype=D64)
    np.testing.assert_allclose(d.cdf(d.icdf(q)).numpy(), q.numpy(), rtol=1e-8)


def test_log_prob_is_stable_far_in_the_tail():
    d = GaussianMixture(
        torch.zeros(1, 2, dtype=D64), torch.tensor([[0.0, 1.0]], dtype=D64), torch.tensor([[1.0, 1.0]], dtype=D64)
    )
    y = torch.tensor([200.0], dtype=D64)
    # exact: log(0.5 N(200;0,1) + 0.5 N(200;1,1))
    a = stats.norm.logpdf(200.0, 0, 1)
    b = stats.norm.logpdf(200.0, 1, 1)
    expected = np.logaddexp(a, b) + math.log(0.5)
    assert math.isfinite(d.log_prob(y).item())
    assert d.log_prob(y).item() == pytest.approx(expected, rel=1e-12)


def test_log_prob_gradient_reaches_parameters():
    logits = torch.randn(4, 3, dtype=D64, requires_grad=True)
    loc = torch.randn(4, 3, dtype=D64, requires_grad=True)
    scale = torch.rand(4, 3, dtype=D64).add(0.5).requires_grad_()
    d = GaussianMixture(logits, loc, scale)
    y = torch.randn(4, dtype=D64)
    assert torch.autograd.gradcheck(lambda a, b, c: GaussianMixture(a, b, c).log_prob(y), (logits, loc, scale))
    d.log_prob(y).sum().backward()
    assert loc.grad is not None and torch.all(loc.grad != 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantiles_invert_cdf_and_match_brentq(seed):
    d = random_mixture(30, 5, seed=seed, spread=10.0, min_scale=1e-3)
    q = torch.rand(30, generator=torch.Generator().manual_seed(seed + 10), dtype=D64)
    x = d.icdf(q)
    np.testing.assert_allclose(d.cdf(x).numpy(), q.numpy(), atol=1e-10)
    w, m, s = d.weights.numpy(), d.loc.numpy(), d.scale.numpy()
    for i in range(30):
        f = lambda t: float((w[i] * stats.norm.cdf(t, m[i], s[i])).sum() - q[i])
        ref = optimize.brentq(f, -200, 200, xtol=1e-14, rtol=1e-14)
        assert x[i].item() == pytest.approx(ref, rel=1e-8, abs=1e-9)


def test_quantiles_on_hard_mixtures():
    levels = torch.tensor([1e-9, 1e-4, 0.005, 0.25, 0.5, 0.75, 0.995, 1 - 1e-4, 1 - 1e-9], dtype=D64)
    x = HARD.icdf(levels[:, None])  # (9, 4)
    assert x.shape == (9, 4)
    w, m, s = HARD.weights.numpy(), HARD.loc.numpy(), HARD.scale.numpy()
    for i in range(4):
        for j, q in enumerate(levels.tolist()):
            lower = q <= 0.5

            def f(t):
                if lower:
                    return float((w[i] * stats.norm.cdf(t, m[i], s[i])).sum() - q)
                return float((1 - q) - (w[i] * stats.norm.sf(t, m[i], s[i])).sum())

            ref = optimize.brentq(f, -2000, 2000, xtol=1e-13, rtol=1e-15, maxiter=500)
            # relative accuracy ~1e-6 of the interval's scale
            assert x[j, i].item() == pytest.approx(ref, rel=1e-6, abs=1e-9), (i, q)
    # an ill-posed level between far-apart components still lands inside the gap
    mid = HARD.icdf(torch.tensor(0.5, dtype=D64))[0].item()
    assert -990 < mid < 990


def test_quantile_edges_and_monotone():
    d = random_mixture(3, 2, seed=4)
    assert torch.all(d.icdf(0.0) == -math.inf)
    assert torch.all(d.icdf(1.0) == math.inf)
    qs = torch.linspace(0.001, 0.999, 101, dtype=D64)[:, None]
    x = d.icdf(qs)
    assert torch.all(x[1:] > x[:-1])
    torch.testing.assert_close(d.quantile(qs), x)


def test_single_normal_quantile_and_interval():
    d = GaussianMixture.from_normal(torch.tensor([1.0, -2.0], dtype=D64), torch.tensor([2.0, 0.5], dtype=D64))
    lo, hi = d.interval(0.9)
    np.testing.assert_allclose(lo.numpy(), stats.norm.ppf(0.05, [1.0, -2.0], [2.0, 0.5]), rtol=1e-12)
    np.testing.assert_allclose(hi.numpy(), stats.norm.ppf(0.95, [1.0, -2.0], [2.0, 0.5]), rtol=1e-12)


def test_interval_has_its_level_of_mass():
    d = random_mixture(40, 4, seed=5, spread=5.0)
    for level in (0.5, 0.8, 0.95):
        lo, hi = d.interval(level)
        mass = d.cdf(hi) - d.cdf(lo)
        np.testing.assert_allclose(mass.numpy(), level, atol=1e-10)
        assert torch.all(lo < hi)


def test_mean_variance_closed_form_and_samples():
    d = random_mixture(6, 3, seed=6)
    w, m, s = d.weights.numpy(), d.loc.numpy(), d.scale.numpy()
    mean = (w * m).sum(-1)
    second = (w * (s**2 + m**2)).sum(-1)
    np.testing.assert_allclose(d.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(d.variance.numpy(), second - mean**2, rtol=1e-10)
    np.testing.assert_allclose(d.stddev.numpy(), np.sqrt(second - mean**2), rtol=1e-10)
    draws = d.sample((200_000,), generator=torch.Generator().manual_seed(0))
    assert draws.shape == (200_000, 6)
    se = np.sqrt(d.variance.numpy() / 200_000)
    assert np.all(np.abs(draws.mean(0).numpy() - mean) < 5 * se)
    np.testing.assert_allclose(draws.var(0).numpy(), d.variance.numpy(), rtol=0.03)
    # samples follow the CDF: KS test per input
    for i in range(6):

        def cdf_i(t, i=i):
            t = np.asarray(t)
            return (w[i] * stats.norm.cdf(t[:, None], m[i], s[i])).sum(-1)

        assert stats.kstest(draws[:5000, i].numpy(), cdf_i).pvalue > 1e-3


def test_sample_is_reproducible_with_generator_and_shapes():
    d = random_mixture(4, 2, seed=7)
    a = d.sample((3, 5), generator=torch.Generator().manual_seed(1))
    b = d.sample((3, 5), generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 5, 4)
    torch.testing.assert_close(a, b)
    assert d.sample().shape == (4,)
    assert d.batch_shape == (4,) and d.event_shape == ()


def test_concat_and_epistemic_aleatoric_split_by_hand():
    # two members, each a single Gaussian: means 0 and 2, variances 1 and 4
    a = GaussianMixture.from_normal(torch.tensor([0.0], dtype=D64), torch.tensor([1.0], dtype=D64))
    b = GaussianMixture.from_normal(torch.tensor([2.0], dtype=D64), torch.tensor([2.0], dtype=D64))
    c = GaussianMixture.concat([a, b])
    assert c.members == 2 and c.num_components == 2
    torch.testing.assert_close(c.weights, torch.tensor([[0.5, 0.5]], dtype=D64))
    assert c.mean.item() == pytest.approx(1.0)
    assert c.epistemic_variance.item() == pytest.approx(1.0)  # var of {0, 2}
    assert c.aleatoric_variance.item() == pytest.approx(2.5)  # mean of {1, 4}
    assert c.variance.item() == pytest.approx(3.5)
    assert a.epistemic_variance.item() == 0.0
    assert a.aleatoric_variance.item() == pytest.approx(a.variance.item())
    # density of the concat is the average density
    y = torch.tensor([0.7], dtype=D64)
    expected = 0.5 * (a.log_prob(y).exp() + b.log_prob(y).exp())
    torch.testing.assert_close(c.log_prob(y).exp(), expected)


def test_split_with_multi_component_members():
    m1 = random_mixture(5, 3, seed=8)
    m2 = random_mixture(5, 3, seed=9)
    m3 = random_mixture(5, 3, seed=10)
    c = GaussianMixture.concat([m1, m2, m3])
    assert c.members == 3 and c.num_components == 9
    means = torch.stack([m1.mean, m2.mean, m3.mean])
    variances = torch.stack([m1.variance, m2.variance, m3.variance])
    torch.testing.assert_close(c.epistemic_variance, means.var(0, unbiased=False))
    torch.testing.assert_close(c.aleatoric_variance, variances.mean(0))
    torch.testing.assert_close(c.epistemic_variance + c.aleatoric_variance, c.variance)
    # members given directly: same split as the concat
    d = GaussianMixture(c.logits, c.loc, c.scale, members=3)
    torch.testing.assert_close(d.epistemic_variance, c.epistemic_variance)
    # concat of concats adds members
    assert GaussianMixture.concat([c, GaussianMixture.concat([m1])]).members == 4


def test_to_units_is_an_affine_map():
    d = random_mixture(5, 3, seed=11)
    shift, sc = torch.tensor(3.0, dtype=D64), torch.tensor(2.5, dtype=D64)
    e = d.to_units(shift, sc)
    y = torch.randn(5, dtype=D64)
    torch.testing.assert_close(e.log_prob(shift + sc * y), d.log_prob(y) - math.log(2.5))
    torch.testing.assert_close(e.cdf(shift + sc * y), d.cdf(y))
    torch.testing.assert_close(e.mean, shift + sc * d.mean)
    torch.testing.assert_close(e.variance, sc**2 * d.variance)
    per_row = d.to_units(torch.arange(5, dtype=D64), torch.linspace(1, 2, 5, dtype=D64))
    torch.testing.assert_close(per_row.mean, torch.arange(5, dtype=D64) + torch.linspace(1, 2, 5, dtype=D64) * d.mean)
    lo, hi = d.interval(0.8)
    lo2, hi2 = e.interval(0.8)
    torch.testing.assert_close(lo2, shift + sc * lo)
    torch.testing.assert_close(hi2, shift + sc * hi)


def test_float32_follows_input_dtype():
    d = GaussianMixture(torch.zeros(3, 2), torch.randn(3, 2), torch.ones(3, 2))
    assert d.log_prob(torch.zeros(3)).dtype == torch.float32
    assert d.icdf(0.3).dtype == torch.float32
    assert d.sample((2,)).dtype == torch.float32


@pytest.mark.parametrize(
    "logits, loc, scale, members, match",
    [
        (torch.zeros(3), torch.zeros(3), torch.ones(3), 1, "shape"),
        (torch.zeros(3, 2), torch.zeros(3, 3), torch.ones(3, 2), 1, "same shape"),
        (torch.zeros(0, 2), torch.zeros(0, 2), torch.ones(0, 2), 1, "n >= 1"),
        (torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 1, "scale must be > 0"),
        (torch.zeros(3, 2), torch.zeros(3, 2), -torch.ones(3, 2), 1, "scale must be > 0"),
        (torch.zeros(3, 2), torch.full((3, 2), math.nan), torch.ones(3, 2), 1, "loc contains NaN"),
        (torch.full((3, 2), math.inf), torch.zeros(3, 2), torch.ones(3, 2), 1, "logits contains NaN"),
        (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 2), 3, "must divide"),
        (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 2), 0, "positive int"),
        (torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 2), torch.ones(3, 2), 1, "floating-point"),
        (torch.zeros(3, 2, dtype=D64), torch.zeros(3, 2), torch.ones(3, 2), 1, "share a dtype"),
    ],
)
def test_constructor_errors(logits, loc, scale, members, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(logits, loc, scale, members=members)


def test_value_and_level_errors():
    d = random_mixture(4, 2, seed=12)
    with pytest.raises(ValueError, match="NaN"):
        d.log_prob(torch.tensor([0.0, math.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="broadcast"):
        d.log_prob(torch.zeros(5))
    with pytest.raises(ValueError, match="broadcast"):
        d.cdf(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.icdf(torch.tensor(1.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.icdf(-0.1)
    for bad in (0.0, 1.0, -0.5, 1.2, math.nan):
        with pytest.raises(ValueError, match="level"):
            d.interval(bad)
    with pytest.raises(ValueError, match="level"):
        d.interval("0.9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale must be > 0"):
        d.to_units(0.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        d.to_units(math.nan, 1.0)
    with pytest.raises(ValueError, match="shape"):
        d.to_units(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="at least one"):
        GaussianMixture.concat([])
    with pytest.raises(ValueError, match="same inputs"):
        GaussianMixture.concat([d, random_mixture(5, 2, seed=0)])
    with pytest.raises(ValueError, match="components per member"):
        GaussianMixture.concat([d, random_mixture(4, 3, seed=0)])


def test_validate_args_false_skips_value_checks_only():
    d = GaussianMixture(torch.zeros(2, 1), torch.zeros(2, 1), torch.ones(2, 1), validate_args=False)
    assert torch.isnan(d.log_prob(torch.tensor([math.nan, 0.0]))[0])
    with pytest.raises(ValueError, match="NaN"):
        d.icdf(torch.tensor([math.nan, 0.5]))
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture(torch.zeros(2), torch.zeros(2), torch.ones(2), validate_args=False)


def test_row_selection_and_detach():
    loc = torch.randn(6, 2, dtype=D64, requires_grad=True)
    d = GaussianMixture(torch.zeros(6, 2, dtype=D64), loc, torch.ones(6, 2, dtype=D64), members=2)
    y = torch.randn(6, dtype=D64)
    sub = d[1:4]
    assert sub.batch_shape == (3,) and sub.members == 2
    torch.testing.assert_close(sub.log_prob(y[1:4]), d.log_prob(y)[1:4])
    torch.testing.assert_close(d[-1].mean, d.mean[-1:])
    torch.testing.assert_close(d[torch.tensor([5, 0])].cdf(y[[5, 0]]), d.cdf(y)[[5, 0]])
    assert d.log_prob(y).requires_grad and not d.detach().log_prob(y).requires_grad


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    k=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    spread=st.floats(0.0, 100.0),
    log_scale=st.floats(-6.0, 2.0),
    q=st.floats(1e-12, 1 - 1e-12),
)
def test_quantile_inverts_cdf_property(k, seed, spread, log_scale, q):
    g = torch.Generator().manual_seed(seed)
    d = GaussianMixture(
        3 * torch.randn(2, k, generator=g, dtype=D64),
        spread * torch.randn(2, k, generator=g, dtype=D64),
        10.0 ** (log_scale + torch.rand(2, k, generator=g, dtype=D64)),
    )
    x = d.icdf(torch.tensor(q, dtype=D64))
    assert torch.all(torch.isfinite(x))
    # the exact root lies within delta of x: the (tail-aware) CDF brackets q at x -+ delta
    delta = 1e-12 * torch.clamp(x.abs(), min=1.0)

    def tail(t):  # lower tail for q <= 1/2, upper tail otherwise (SciPy: accurate in float64)
        z = ((t[:, None] - d.loc) / d.scale).numpy()
        return (d.weights.numpy() * special.ndtr(z if q <= 0.5 else -z)).sum(-1)

    if q <= 0.5:
        assert np.all((tail(x - delta) <= q) & (tail(x + delta) >= q))
    else:
        assert np.all((tail(x - delta) >= 1 - q) & (tail(x + delta) <= 1 - q))


def test_cat_rows_equals_the_mixture_over_all_rows():
    gen = torch.Generator().manual_seed(0)
    logits, loc = (
        torch.randn(7, 6, generator=gen, dtype=torch.float64),
        torch.randn(7, 6, generator=gen, dtype=torch.float64),
    )
    scale = torch.rand(7, 6, generator=gen, dtype=torch.float64) + 0.1
    whole = GaussianMixture(logits, loc, scale, members=2)
    joined = GaussianMixture.cat_rows([whole[0:3], whole[3:4], whole[4:7]])
    y = torch.randn(7, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(joined.log_prob(y), whole.log_prob(y))
    torch.testing.assert_close(joined.epistemic_variance, whole.epistemic_variance)
    assert joined.members == 2
    assert GaussianMixture.cat_rows([whole]) is whole
    with pytest.raises(ValueError, match="same components and members"):
        GaussianMixture.cat_rows([whole, GaussianMixture(logits, loc, scale, members=3)])
    with pytest.raises(ValueError, match="at least one"):
        GaussianMixture.cat_rows([])


def test_a_column_of_another_length_than_the_inputs_is_refused():
    d = random_mixture(6, 2, seed=21)
    for method in (d.log_prob, d.cdf):
        with pytest.raises(ValueError, match=r"value of shape \(7, 1\) is a column of 7 values for a mixture over 6"):
            method(np.zeros((7, 1)))
        torch.testing.assert_close(method(np.zeros((6, 1))), method(np.zeros(6)))  # the mixture's own column
        assert method(np.zeros((7, 6))).shape == (7, 6)
    assert d.icdf(torch.full((7, 1), 0.5, dtype=D64)).shape == (7, 6)  # levels for every input


def test_interval_takes_numpy_scalars_and_sample_takes_an_empty_shape():
    d = random_mixture(3, 2, seed=22)
    for level in (np.float64(0.9), np.array(0.9), torch.tensor(0.9, dtype=D64)):
        torch.testing.assert_close(d.interval(level), d.interval(0.9))
    torch.testing.assert_close(d.interval(np.float32(0.9)), d.interval(float(np.float32(0.9))))
    with pytest.raises(ValueError, match="level"):
        d.interval(np.bool_(True))
    assert d.sample((0,)).shape == (0, 3) and d.sample((2, 0)).shape == (2, 0, 3)


def test_an_integer_index_out_of_range_is_an_index_error():
    d = random_mixture(4, 2, seed=23)
    for i in (4, 100, -5):
        with pytest.raises(IndexError, match=f"index {i} is out of range for a mixture over 4 inputs"):
            d[i]
    torch.testing.assert_close(d[-1].loc, d.loc[3:])
    torch.testing.assert_close(d[-4].loc, d.loc[:1])
