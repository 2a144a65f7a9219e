"""MDN: learns a known mixture, stable likelihood, spread initialisation, collapse guard."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import MDN, MDNNet, mixture_collapse_penalty
from hidlr.uq.models.blocks import spread_quantiles


def _sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """y | x ~ 0.4 N(-1 + x/2, 0.15^2) + 0.6 N(0.8 - x/2, 0.25^2), x ~ U(-1, 1)."""
    x = rng.uniform(-1, 1, n)
    first = rng.random(n) < 0.4
    y = np.where(first, rng.normal(-1 + 0.5 * x, 0.15), rng.normal(0.8 - 0.5 * x, 0.25))
    return x[:, None], y


def _true_log_density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x[:, 0]
    return np.logaddexp(
        math.log(0.4) + stats.norm.logpdf(y, -1 + 0.5 * x, 0.15),
        math.log(0.6) + stats.norm.logpdf(y, 0.8 - 0.5 * x, 0.25),
    )


def test_mdn_learns_two_component_mixture():
    rng = np.random.default_rng(0)
    X, y = _sample(2000, rng)
    Xt, yt = _sample(20_000, rng)
    m = MDN(components=2).fit(X, y, optimizer="adam", epochs=60, batch_size=128, lr=1e-2, seed=0)
    log_p0 = _true_log_density(Xt, yt)
    kl = log_p0 - m.predict_proba(Xt).log_prob(torch.as_tensor(yt, dtype=torch.float32)).double().numpy()
    # Reference: the best any single Gaussian can do is the moment-matched one (exact moments).
    x = Xt[:, 0]
    mean = 0.4 * (-1 + 0.5 * x) + 0.6 * (0.8 - 0.5 * x)
    second = 0.4 * (0.15**2 + (-1 + 0.5 * x) ** 2) + 0.6 * (0.25**2 + (0.8 - 0.5 * x) ** 2)
    kl_gauss = np.mean(log_p0 - stats.norm.logpdf(yt, mean, np.sqrt(second - mean**2)))
    assert kl_gauss > 0.7  # the task is far from Gaussian
    # KL(p0 || p_hat) by Monte Carlo, standard error ~1e-3 with 20k points. 0.05 nats is under a
    # tenth of the single-Gaussian floor and well below the p/(2n) ~ 0.1 nats that a maximum-
    # likelihood fit of this ~400-parameter net on 2000 points is expected to lose asymptotically;
    # a model that found only one mode, or the wrong scales, cannot pass it.
    assert kl.mean() < 0.05
    assert kl.mean() < 0.1 * kl_gauss


def test_scale_floor_is_outside_the_nonlinearity():
    torch.manual_seed(0)
    net = MDNNet(1, 3, scale_floor=1e-2).double()
    with torch.no_grad():
        net.scale.weight.zero_()
        net.scale.bias.fill_(-1e4)  # softplus underflows to exactly 0
    x = torch.zeros(4, 1, dtype=torch.float64)
    _, _, scale = net.params(x)
    assert torch.all(scale == 1e-2)
    loss = net.loss(x, torch.full((4,), 1e3, dtype=torch.float64))  # 1e5 floors away: still finite
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_log_likelihood_is_stable_for_far_points():
    """log-sum-exp: a point where every component density underflows still gets its log-density."""
    torch.manual_seed(0)
    net = MDNNet(1, 2).double()
    x = torch.zeros(1, 1, dtype=torch.float64)
    logits, loc, scale = (t.detach() for t in net.params(x))
    y = torch.tensor([60.0], dtype=torch.float64)
    w = torch.softmax(logits, -1)[0].numpy()
    z = ((60.0 - loc) / scale)[0].numpy()
    expected = np.logaddexp.reduce(np.log(w) + stats.norm.logpdf(z) - np.log(scale[0].numpy()))
    assert float(net(x).log_prob(y).detach()) == pytest.approx(expected, rel=1e-12)
    assert float(net.loss(x, y).detach()) > 100  # finite, large


def test_initial_components_are_spread_over_targets():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(500, 3)), rng.exponential(size=500)
    m = MDN(components=4)
    ys = torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    torch.manual_seed(0)
    net = m.build(3, ys, 500)
    expected = torch.quantile(ys, torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(net.loc.bias.detach(), expected)
    with torch.no_grad():
        loc = net(torch.as_tensor(X, dtype=torch.float32)).loc
    # the input-dependent part is small at initialisation: components do not sit on each other
    gaps = loc.sort(-1).values.diff(dim=-1)
    assert float(gaps.min()) > 0.5 * float(expected.diff().min())


def test_collapse_penalty_closed_form():
    k = 3
    uniform = torch.zeros(5, k, dtype=torch.float64)
    assert float(mixture_collapse_penalty(uniform)) == pytest.approx(0.0, abs=1e-15)
    collapsed = torch.tensor([[50.0, 0.0, 0.0]] * 5, dtype=torch.float64)
    assert float(mixture_collapse_penalty(collapsed)) == pytest.approx(math.log(k), rel=1e-12)
    # peaked per input but balanced over the batch: no penalty
    balanced = 50.0 * torch.eye(k, dtype=torch.float64)
    assert float(mixture_collapse_penalty(balanced)) == pytest.approx(0.0, abs=1e-12)
    logits = torch.randn(7, k, dtype=torch.float64)
    pbar = torch.softmax(logits, -1).mean(0).numpy()
    assert float(mixture_collapse_penalty(logits)) == pytest.approx(float(np.sum(pbar * np.log(pbar * k))), rel=1e-12)


def test_loss_adds_weighted_penalty():
    torch.manual_seed(0)
    x, y = torch.randn(16, 2), torch.randn(16)
    net = MDNNet(2, 3, collapse_penalty=0.5)
    with torch.no_grad():
        logits, loc, scale = net.params(x)
        nll = -GaussianMixture(logits, loc, scale).log_prob(y).mean()
        assert float(net.loss(x, y)) == pytest.approx(float(nll + 0.5 * mixture_collapse_penalty(logits)), rel=1e-6)


def test_param_groups_cover_every_parameter_once():
    net = MDNNet(3, 4, hidden=(8, 8))
    groups = MDN().param_groups(net)
    assert [g["name"] for g in groups] == ["trunk", "logits", "loc", "scale"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))


def test_default_optimizer_is_adam_and_hidlr_on_request():
    from hidlr import HiDLR

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 2)), rng.normal(size=32)
    assert type(MDN(2, hidden=(4,)).fit(X, y, epochs=1).optimizer_) is torch.optim.Adam
    opt = MDN(2, hidden=(4,)).fit(X, y, epochs=2, optimizer="hidlr").optimizer_
    assert isinstance(opt, HiDLR) and opt.history
    assert [g["name"] for g in opt.param_groups] == ["trunk", "logits", "loc", "scale"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_train_in_their_dtype(dtype):
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(40, 2)), dtype=dtype)
    y = torch.as_tensor(rng.normal(size=40))
    m = MDN(components=2, hidden=(4,), epochs=2, optimizer="adam").fit(X, y)
    assert all(p.dtype == dtype for p in m.module_.net.parameters())
    assert np.isfinite(m.predict(X)).all()
    # the components start at the targets' quantiles, ranked in float32 and stored in the net's dtype
    ys = m.module_.standardize_y(y)
    expected = torch.quantile(ys.float(), (torch.arange(2, dtype=torch.float32) + 0.5) / 2).to(dtype)
    torch.testing.assert_close(spread_quantiles(ys, 2), expected, rtol=0, atol=0)
