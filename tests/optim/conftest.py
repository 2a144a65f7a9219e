"""Shared fixtures: a random quadratic loss over K parameter groups, in float64."""

from __future__ import annotations

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


@pytest.fixture
def quadratic() -> Quadratic:
    return make_quadratic([3, 2, 4])
