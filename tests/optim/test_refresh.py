"""The refresh's memory and its update line: one copy of the probed groups' weights at the defaults,
counted by deterministic accounting of the tensor storage alive during the probes."""

import pytest
import torch
from torch import nn

from hidlr import HiDLR
from hidlr.bench.overhead.memory import live_tensor_bytes
from hidlr.optim.refresh import UpdateLine


def test_update_line_puts_each_group_at_a_multiple_of_its_update():
    gen = torch.Generator().manual_seed(0)
    params = [[torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(2, generator=gen, dtype=torch.float64)]]
    params.append([torch.randn(3, generator=gen, dtype=torch.float64)])
    w0 = [[p.clone() for p in ps] for ps in params]
    line = UpdateLine(params, [True, False])
    steps = [[torch.randn_like(p) for p in ps] for ps in params]
    for ps, ds in zip(params, steps):  # the "base step"
        for p, d in zip(ps, ds):
            p.sub_(d)
    line.capture()
    for target in (-2.0, 0.5, 0.0, 3.0):
        line.move([target, 7.0])  # group 1 is not moving: stays where the base step put it
        for p, p0, d in zip(params[0], w0[0], steps[0]):
            torch.testing.assert_close(p, p0 - target * d, rtol=0, atol=1e-14)
        torch.testing.assert_close(params[1][0], w0[1][0] - steps[1][0], rtol=0, atol=0)
    line.move([1.0, 1.0])
    for p, p0, d in zip(params[0], w0[0], steps[0]):
        torch.testing.assert_close(p, p0 - d, rtol=0, atol=1e-14)


def _held_during_refresh(model, opt, x, y):
    """(bytes alive after a plain step, most bytes alive at the start of the probe calls of the next
    step, a refresh), on the CPU."""
    loss_fn = nn.MSELoss()
    for _ in range(3):  # steps 0 (a refresh), 1, 2: Adam's state exists
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step(probe=lambda: loss_fn(model(x), y))
    before = live_tensor_bytes()["cpu"]
    seen = []

    def probe():
        if len(seen) < 3:
            seen.append(live_tensor_bytes()["cpu"])
        return loss_fn(model(x), y)

    opt.zero_grad()
    loss_fn(model(x), y).backward()
    assert opt.is_refresh_step()
    opt.step(probe=probe)
    assert len(seen) == 3 and opt.refresh_count == 2
    return before, max(seen)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 256))


@pytest.mark.parametrize(
    "groups, options, low, high",
    [
        (1, {}, 0.99, 1.01),  # the update of the one group: one copy
        (3, {"groups_per_refresh": 1}, 0.32, 0.35),  # only the probed group's update
        (3, {"max_groups": 2}, 0.99, 1.01),  # the one-group line moves every group: one copy in all
        (1, {"rollback": True}, 3.99, 4.01),  # update + weights + Adam's two moments
    ],
)
def test_a_refresh_holds_one_copy_of_the_probed_weights_and_a_snapshot_only_with_rollback(groups, options, low, high):
    model = _model()
    params = list(model.parameters())
    split = [params[2 * i : 2 * i + 2] for i in range(3)] if groups == 3 else [params]
    opt = HiDLR(torch.optim.Adam([{"params": ps} for ps in split], lr=1e-3), every=3, **options)
    x, y = torch.randn(64, 256), torch.randn(64, 256)
    before, during = _held_during_refresh(model, opt, x, y)
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    assert low <= (during - before) / param_bytes <= high


def test_live_tensor_bytes_counts_storages_once_and_gradients():
    before = live_tensor_bytes().get("cpu", 0)
    a = torch.zeros(1000, dtype=torch.float64)
    views = [a[:10], a.view(10, 100), a[500:]]
    p = nn.Parameter(torch.zeros(250))
    p.grad = torch.ones(250)
    assert live_tensor_bytes()["cpu"] - before == 8000 + 1000 + 1000
    del a, views, p
    assert live_tensor_bytes().get("cpu", 0) == before


@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_maximizing_an_objective_is_minimizing_its_negation_step_for_step(base):
    """A base optimizer with ``maximize=True`` climbs the probe's value: Hi-DLR fits its negation,
    so the run equals minimizing ``-objective`` bitwise, rates included (and, unlike a fit of the
    objective itself, the concave line is accepted and the rates move)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(4, 1, generator=gen, dtype=torch.float64)
    runs = []
    for maximize in (True, False):
        torch.manual_seed(1)
        model = nn.Linear(4, 1).double()
        sign = -1.0 if maximize else 1.0  # the objective -mse maximized, or the loss mse minimized

        def value():
            return sign * ((model(x) - y) ** 2).mean()  # noqa: B023 (used within the iteration)

        if base == "adam":
            inner = torch.optim.Adam(model.parameters(), lr=1e-3, maximize=maximize)
        else:
            inner = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, maximize=maximize)
        opt = HiDLR(inner)
        for _ in range(12):
            opt.zero_grad()
            value().backward()
            opt.step(probe=value)
        runs.append((model, opt))
    (up, opt_up), (down, opt_down) = runs
    for a, b in zip(up.parameters(), down.parameters()):
        assert torch.equal(a, b)
    assert opt_up.lrs == opt_down.lrs and opt_up.lrs[0] > 1e-3  # the rates grew
    assert [h["groups"][0]["accepted"] for h in opt_up.history] == [
        h["groups"][0]["accepted"] for h in opt_down.history
    ]
