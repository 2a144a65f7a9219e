"""MC dropout: unbiased pass average, p = 0 is deterministic, common random numbers."""

import numpy as np
import pytest
import torch

from hidlr.uq.models import MCDropout, MCDropoutNet
from hidlr.uq.models.training import seeded


def test_pass_average_is_the_no_dropout_network():
    """Inverted dropout before a linear head: the expected mean over masks is the plain network."""
    torch.manual_seed(0)
    net = MCDropoutNet(2, hidden=(16,), dropout=0.3).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        dist = net.predictive(x, samples=20_000)
        plain = net.loc(torch.relu(net.layers[0](x)))[:, 0]
    se = (dist.epistemic_variance / 20_000).sqrt()
    assert dist.members == 20_000
    assert torch.all((dist.mean - plain).abs() < 5 * se)
    assert torch.all(dist.epistemic_variance > 0)


def test_zero_dropout_has_no_epistemic_variance():
    torch.manual_seed(0)
    net = MCDropoutNet(3, dropout=0.0)
    with torch.no_grad():
        dist = net.predictive(torch.randn(4, 3), samples=7)
    assert torch.equal(dist.loc, dist.loc[:, :1].expand(4, 7))  # every pass is the same network
    assert torch.all(dist.epistemic_variance < 1e-12)
    noise = torch.nn.functional.softplus(net.noise_rho.detach()) + net.noise_floor
    assert torch.allclose(dist.variance, noise.square().expand(4))


def test_loss_is_deterministic_under_common_random_numbers():
    torch.manual_seed(0)
    net = MCDropoutNet(3, dropout=0.5)
    x, y = torch.randn(32, 3), torch.randn(32)
    with torch.no_grad():
        with seeded(4, x.device):
            a = net.loss(x, y)
        with seeded(4, x.device):
            b = net.loss(x, y)
        c = net.loss(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_estimator_groups_and_prediction_members():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    m = MCDropout(dropout=0.1, samples=30, hidden=(8,)).fit(X, y, optimizer="adam", epochs=2)
    groups = m.param_groups(m.module_.net)
    assert [g["name"] for g in groups] == ["trunk", "loc", "noise"]
    assert sum(len(g["params"]) for g in groups) == len(list(m.module_.net.parameters()))
    d = m.predict_proba(X[:3])
    assert d.members == 30
    assert torch.equal(d.loc, m.predict_proba(X[:3]).loc)  # repeatable: seeded from the fit seed
    assert not torch.equal(d.loc, m.predict_proba(X[:3], seed=99).loc)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_heteroscedastic_that_is_not_a_bool_is_refused(value):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(TypeError, match="heteroscedastic must be True or False"):
        MCDropout(heteroscedastic=value, epochs=1).fit(X, y)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_a_dropout_outside_0_1_is_refused_with_its_range(dropout):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        MCDropout(dropout=dropout, hidden=(4,), epochs=1).fit(X, y)
