"""in_float64: float64 forward passes inside, the module restored exactly outside."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hidlr import curvature


def test_float64_inside_restored_outside():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    x = torch.randn(5, 4)
    model.eval()
    out32 = model(x)
    model.train()
    with curvature.in_float64(model):
        model.eval()
        torch.testing.assert_close(model(x), out32.double(), rtol=1e-5, atol=1e-6)
        model.train()
        out = model(x)
        assert out.dtype == torch.float64
        assert all(p.dtype == torch.float64 for p in model.parameters())
        # the float64 forward agrees with the float32 one to float32 precision
        loss = out.pow(2).mean()
        dirs = [[torch.ones_like(p) for p in params]]
        a = curvature.along(lambda: model(x).pow(2).mean(), [params], dirs)
        assert a.A.dtype == torch.float64
    assert torch.isfinite(loss)
    assert [p is q for p, q in zip(model.parameters(), params)] == [True] * len(params)
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype
        assert torch.equal(v, before[k]), k
    model(x).sum().backward()
    opt.step()  # the optimizer still holds the same, float32 parameters


def test_submodule_called_directly_gets_float64_inputs():
    model = nn.Sequential(nn.Linear(3, 2))
    with curvature.in_float64(model):
        assert model[0](torch.randn(4, 3)).dtype == torch.float64


def test_rejects_non_module():
    with pytest.raises(TypeError, match="nn.Module"), curvature.in_float64(torch.zeros(2)):
        pass
