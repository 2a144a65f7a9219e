"""BackboneNet: a feature extractor in front of the library's nets, trained through the head's loss."""

import pytest
import torch
from torch import nn

from hidlr.uq.models import BackboneNet, BayesianMDNNet, BNNNet, MDNNet, ScaledNet
from hidlr.uq.models.training import seeded


def _data(n=12, d=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)


def _backbone(d=6, f=4):
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(d, f), nn.Tanh()).double()


def test_forward_and_loss_are_the_heads_on_the_features():
    x, y = _data()
    backbone, head = _backbone(), MDNNet(4, 3, hidden=(5,)).double()
    net = BackboneNet(backbone, head)
    h = backbone(x)
    expected = head(h)
    got = net(x)
    torch.testing.assert_close(got.loc, expected.loc)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(net.loss(x, y), head.loss(h, y))
    torch.testing.assert_close(net.predictive(x, samples=7).scale, expected.scale)  # a deterministic head


def test_gradients_reach_the_backbone_and_match_autograd_of_the_composition():
    x, y = _data()
    backbone, head = _backbone(), MDNNet(4, 2, hidden=(5,)).double()
    net = BackboneNet(backbone, head)
    net.loss(x, y).backward()
    grads = [p.grad.clone() for p in backbone.parameters()]
    assert all(g.abs().sum() > 0 for g in grads)
    net.zero_grad()
    reference = torch.autograd.grad(head.loss(backbone(x), y), list(backbone.parameters()))
    for g, r in zip(grads, reference):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("kind", ["bnn", "bayesian_mdn"])
def test_stochastic_heads_sample_on_features_computed_once(kind):
    x, y = _data()
    backbone = _backbone()
    head = (
        BNNNet(4, dataset_size=50, hidden=(5,), heteroscedastic=True)
        if kind == "bnn"
        else BayesianMDNNet(4, 2, 50, hidden=(5,))
    ).double()
    net = BackboneNet(backbone, head)
    with seeded(3, x.device):
        got = net.predictive(x, samples=9)
    with seeded(3, x.device):
        expected = head.predictive(backbone(x), samples=9)
    assert got.members == 9
    torch.testing.assert_close(got.loc, expected.loc)
    torch.testing.assert_close(got.scale, expected.scale)
    # options of the head's loss pass through (the ELBO's KL / n_train)
    with seeded(4, x.device):
        a = net.loss(x, y, n_train=10)
    with seeded(4, x.device):
        b = head.loss(backbone(x), y, n_train=10)
    torch.testing.assert_close(a, b)


def test_inside_a_scaled_net_monte_carlo_goes_through_the_head():
    x, _ = _data()
    net = BackboneNet(_backbone(), BNNNet(4, dataset_size=50, hidden=(5,))).double()
    scaling = {
        "x_shift": torch.zeros(6, dtype=torch.float64),
        "x_scale": torch.ones(6, dtype=torch.float64),
        "y_shift": torch.tensor(2.0, dtype=torch.float64),
        "y_scale": torch.tensor(3.0, dtype=torch.float64),
    }
    with seeded(5, x.device):
        dist = ScaledNet(net, scaling)(x, samples=11)
    with seeded(5, x.device):
        expected = net.predictive(x, samples=11)
    assert dist.members == 11
    torch.testing.assert_close(dist.loc, 2.0 + 3.0 * expected.loc)


def test_bad_parts_are_refused():
    with pytest.raises(TypeError, match="backbone"):
        BackboneNet(lambda x: x, MDNNet(4, 2))
    with pytest.raises(TypeError, match="head"):
        BackboneNet(nn.Linear(3, 4), nn.Linear(4, 1))
