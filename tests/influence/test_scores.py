import math

import pytest
import torch
from torch import nn

from hidlr import HiDLR
from hidlr.influence import (
    format_table,
    influence_from_history,
    influence_table,
    predicted_decrease,
)


def _quadratic(sizes, seed=0):
    """L(w) = 1/2 w^T H w - g^T w over the concatenated groups (float64, coupled H)."""
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    h = m @ m.T / n + torch.diag(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    params = [nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in sizes]

    def loss():
        w = torch.cat([p.reshape(-1) for p in params])
        return 0.5 * w @ h @ w - g @ w

    return params, h, g, loss


def _blocks(sizes):
    out, o = [], 0
    for s in sizes:
        out.append(slice(o, o + s))
        o += s
    return out


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_influence_matches_the_closed_form_on_a_quadratic(base):
    sizes = [3, 2, 4]
    params, h, g, loss = _quadratic(sizes)
    w0 = torch.cat([p.detach().reshape(-1) for p in params])
    grad = h @ w0 - g
    lrs = [0.05, 0.02, 0.1]
    groups = [{"params": [p], "lr": lr, "name": f"g{k}"} for k, (p, lr) in enumerate(zip(params, lrs))]
    inner = torch.optim.SGD(groups) if base == "sgd" else torch.optim.Adam(groups, eps=1e-8)
    opt = HiDLR(inner, every=1000, probe=lambda: loss())
    opt.zero_grad()
    loss().backward()
    opt.step()
    # the update direction at unit rate: the gradient (SGD), g / (|g| + eps) on Adam's first step
    d = grad if base == "sgd" else grad / (grad.abs() + 1e-8)
    expected = []
    for blk in _blocks(sizes):
        b = float(grad[blk] @ d[blk])
        a = float(d[blk] @ h[blk, blk] @ d[blk])
        expected.append(b * b / (2 * a))
    assert opt.influence == pytest.approx(expected, rel=1e-6)
    table = influence_table(opt)
    assert [r.name for r in table] == [f"g{k}" for k in sorted(range(3), key=lambda k: -expected[k])]
    for r in table:
        assert r.per_param == pytest.approx(2 * r.influence / r.params)
    assert sum(r.share for r in table) == pytest.approx(1.0)
    assert "| 1 |" in format_table(table)


def test_a_group_that_cannot_change_the_loss_ranks_last():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    dead = nn.Parameter(torch.randn(50))  # part of the model, never used by the loss
    x, y = torch.randn(64, 4), torch.randn(64, 1)

    def loss():
        return ((net(x) - y) ** 2).mean() + 0.0 * dead.sum()

    groups = [
        {"params": list(net[0].parameters()), "name": "first"},
        {"params": list(net[2].parameters()), "name": "last"},
        {"params": [dead], "name": "dead"},
    ]
    opt = HiDLR(torch.optim.Adam(groups, lr=1e-2), every=3, probe=loss)
    for _ in range(10):
        opt.zero_grad()
        loss().backward()
        opt.step()
    infl = dict(zip(["first", "last", "dead"], opt.influence))
    assert infl["dead"] == 0.0
    assert infl["first"] > 0 and infl["last"] > 0
    assert influence_table(opt)[-1].name == "dead"


def test_predicted_decrease_cases():
    assert predicted_decrease(2.0, 3.0) == pytest.approx(9 / 4)
    assert predicted_decrease(2.0, -1.0) == 0.0
    assert predicted_decrease(-1.0, 1.0) == math.inf
    assert predicted_decrease(-1.0, 1.0, span=2.0) == pytest.approx(2 + 2)  # b s - a s^2 / 2
    assert predicted_decrease(1.0, 4.0, span=1.0) == pytest.approx(4 - 0.5)  # minimum beyond the span
    with pytest.raises(ValueError, match="finite"):
        predicted_decrease(float("nan"), 1.0)


def test_history_reading_skips_unmeasured_groups_and_checks_sizes():
    rec = lambda groups: {"groups": groups}
    g = lambda a, b, reason=None, rate=0.1: {"a": a, "b": b, "rate": rate, "reason": reason}
    hist = [
        rec([g(2.0, 2.0), g(1.0, 1.0, "frozen"), g(0.0, 0.0, "loss does not change measurably along the update")]),
        rec([g(4.0, 2.0), g(1.0, 1.0), g(1.0, 1.0, "no gradients")]),
    ]
    assert influence_from_history(hist, 3) == pytest.approx([(1.0 + 0.5) / 2, 0.5, 0.0])
    with pytest.raises(ValueError, match="groups"):
        influence_from_history(hist, 2)
