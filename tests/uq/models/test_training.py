"""The training loop's pieces: seeded blocks, the probe closure, the single/stacked switch."""

import pytest
import torch

from hidlr.uq.models import BNN
from hidlr.uq.models.training import FitPlan, _Probe, seeded, train_epochs


def test_seeded_blocks_repeat_their_draws_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded(7, torch.device("cpu")):
        a = torch.randn(5)
    with seeded(7, torch.device("cpu")):
        b = torch.randn(5)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)  # the same stream as torch.manual_seed gives on the CPU
    assert torch.equal(torch.randn(5), a)


def test_probe_uses_common_random_numbers():
    """For a stochastic loss, the probe calls of one step see the same batch and the same noise,
    so the probed loss is a deterministic function of the weights; a new step draws afresh."""
    torch.manual_seed(0)
    X, y = torch.randn(100, 2), torch.randn(100)
    net = BNN(hidden=(6,)).build(2, y, 100)
    gen = torch.Generator().manual_seed(0)
    probe = _Probe(net, X, y, 16, gen, stochastic=True)
    with torch.no_grad():
        first = probe()
        assert torch.equal(probe(), first)
        net.out.bias_mu.add_(0.5)  # a perturbed weight changes the probed loss
        assert not torch.equal(probe(), first)
        net.out.bias_mu.sub_(0.5)
        assert torch.equal(probe(), first)
        assert not torch.equal(_Probe(net, X, y, 16, gen, stochastic=True)(), first)


def test_a_single_net_takes_exactly_one_seed():
    plan = FitPlan(torch.zeros(4, 1), torch.zeros(4), epochs=1, batch_size=2, probe_size=2, lr=1e-3, val=None)
    net = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="one seed, got 2"):
        train_epochs(
            net,
            torch.optim.SGD(net.parameters(), lr=0.1),
            plan,
            [0, 1],
            stochastic=False,
            after_epoch=lambda e, loss: "",
        )
