"""Shared fixtures: a random quadratic loss over K parameter groups, in float64."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch


@dataclass
class Quadratic:
    """L(w) = 1/2 w^T H w - g^T w over the concatenation of ``params`` (sizes ``sizes``)."""

    H: torch.Tensor
    g: torch.Tensor
    params: list[torch.nn.Parameter]
    sizes: list[int]

    def loss(self) -> torch.Tensor:
        w = torch.cat([p.reshape(-1) for p in self.params])
        return 0.5 * w @ self.H @ w - self.g @ w

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).clone()

    def newton(self, w0: torch.Tensor, w1: torch.Tensor, rates: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact b (K,) and A (K, K) of the step w0 -> w1 taken at ``rates``."""
        k = len(self.sizes)
        d = torch.zeros(w0.numel(), k, dtype=torch.float64)
        o = 0
        for j, m in enumerate(self.sizes):
            d[o : o + m, j] = (w0[o : o + m] - w1[o : o + m]) / rates[j]
            o += m
        grad = self.H @ w0 - self.g
        return d.T @ grad, d.T @ self.H @ d


def make_quadratic(sizes: list[int], seed: int = 0, coupling: float = 1.0) -> Quadratic:
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    h = coupling * (m @ m.T) / n + torch.diag(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in sizes]
    return Quadratic(h, g, params, list(sizes))


def group_per_param(q: Quadratic) -> list[dict]:
    """One named param group per parameter of the quadratic."""
    return [{"params": [p], "name": f"g{i}"} for i, p in enumerate(q.params)]


def snapshot(q: Quadratic, opt) -> tuple[torch.Tensor, dict]:
    """The weights and a deep copy of the optimizer's state dict."""
    return q.flat(), copy.deepcopy(opt.state_dict())


def assert_unchanged(q: Quadratic, opt, snap, exact_weights: bool = True) -> None:
    """The weights and optimizer state equal ``snap`` (weights bitwise, or up to rounding)."""
    w, sd = snap
    if exact_weights:
        assert torch.equal(q.flat(), w)
    else:  # moved back along the stored update: equal up to rounding
        torch.testing.assert_close(q.flat(), w, rtol=0, atol=1e-14)
    now = opt.state_dict()
    assert now["hidlr"] == sd["hidlr"]
    assert now["base"]["param_groups"] == sd["base"]["param_groups"]
    for key, st_ in sd["base"]["state"].items():
        for name, v in st_.items():
            assert torch.equal(torch.as_tensor(now["base"]["state"][key][name]), torch.as_tensor(v))


def warm(q: Quadratic, opt, steps: int = 3) -> None:
    """``steps`` steps of ``opt`` on ``q``, probing the quadratic's loss."""
    for _ in range(steps):
        opt.zero_grad()
        q.loss().backward()
        opt.step(probe=q.loss)


@pytest.fixture
def quadratic() -> Quadratic:
    return make_quadratic([3, 2, 4])
