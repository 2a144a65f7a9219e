"""The training loop's pieces: seeded blocks, the probe closure, the single/stacked switch."""

import pytest
import torch
from torch import nn

from hidlr.uq.models import BNN
from hidlr.uq.models.training import (
    EarlyStopping,
    FitPlan,
    _Probe,
    fused_adam,
    seeded,
    snapshot_nets,
    train_epochs,
)


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


def test_early_stopping_keeps_the_best_epochs_weights_best_first():
    net = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=4, keep=3)
    values = [5.0, 3.0, float("nan"), 4.0, 3.0, 1.0, 2.0, float("inf"), 7.0, 8.0, 9.0]
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            net.weight.fill_(epoch)  # the weights say which epoch they are from
        stopper.update(epoch, value, net)
        if stopper.stop:
            break
    # stopped four epochs after the best (epoch 6); a tie keeps the earlier epoch; NaN and inf never kept
    assert (stopper.best, stopper.best_epoch, epoch) == (1.0, 6, 10)
    assert stopper.epochs == [6, 7, 2]
    assert [float(s["weight"]) for s in stopper.states] == [6.0, 7.0, 2.0]
    stopper.restore(net)
    assert float(net.weight) == 6.0
    assert snapshot_nets(net, stopper.states[1:])[1].weight.item() == 2.0
    with pytest.raises(ValueError, match="keep"):
        EarlyStopping(patience=3, keep=0)
    never = EarlyStopping(patience=1, keep=2)
    never.update(1, float("nan"), net)
    assert never.state is None and never.states == []


def test_adams_eps_does_not_underflow_in_a_half_precision_net():
    half = nn.Linear(2, 1).half()
    assert fused_adam([{"params": list(half.parameters())}], 1e-3).defaults["eps"] == torch.finfo(torch.float16).tiny
    for dtype in (torch.float32, torch.bfloat16):
        net = nn.Linear(2, 1).to(dtype)
        assert fused_adam([{"params": list(net.parameters())}], 1e-3).defaults["eps"] == 1e-8
    # a parameter without gradient signal stays finite (1e-8 would round to 0 and step by 0 / 0)
    w = nn.Parameter(torch.zeros(3, dtype=torch.float16))
    opt = fused_adam([{"params": [w]}], 1e-3)
    w.grad = torch.zeros_like(w)
    opt.step()
    assert torch.equal(w, torch.zeros_like(w))
