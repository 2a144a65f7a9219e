"""Uncertainty-aware regression workloads with the models of :mod:`hidlr.uq` (generated data).

- ``mdn``: :class:`~hidlr.uq.models.MDNNet` (5 components, tanh trunk 64-64) on the multimodal
  inverse-sine problem; its library grouping trunk / logits / loc / scale (K=4), Adam; validation
  = negative log-likelihood.
- ``bnn``: :class:`~hidlr.uq.models.BNNNet` (Bayes by Backprop, local reparameterisation, one
  hidden layer of 50 units, learned noise) on a 1-D regression; its library grouping means /
  scales / noise (K=3), Adam; loss = negative ELBO per point, validation = predictive NLL.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hidlr.bench.lr.workloads import (
    ADAM_GRID,
    Task,
    Workload,
    register,
    sampler,
    split_data,
)
from hidlr.uq.models import BNN, MDN


def _nll(mix: Any, y: torch.Tensor) -> float:
    return float(-mix.log_prob(y).mean())


def _build_mdn(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n = 2000
    t = torch.rand(n, generator=g)
    x = t + 0.3 * torch.sin(2 * math.pi * t) + 0.05 * torch.randn(n, generator=g)  # inverse problem
    x, y = (x - x.mean()) / x.std(), (t - t.mean()) / t.std()
    tr, va = split_data(n, 500, seed)
    torch.manual_seed(seed)
    est = MDN(components=5, hidden=(64, 64), activation="tanh")
    model = est.build(1, y[tr], len(tr))
    xv, yv = x[va, None], y[va]

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"loss": _nll(m(xv), yv)}  # plain NLL (training adds the small collapse penalty)

    return Task(
        model, est.param_groups(model), sampler(x[tr, None], y[tr], batch_size=128), lambda m, b: m.loss(*b), evaluate
    )


def _build_bnn(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n = 1000
    x = torch.rand(n, generator=g) * 4 - 2
    y = torch.sin(2 * x) + 0.3 * x**2 + 0.2 * torch.randn(n, generator=g)
    y = (y - y.mean()) / y.std()
    tr, va = split_data(n, 300, seed)
    torch.manual_seed(seed)
    est = BNN(hidden=(50,))
    model = est.build(1, y[tr], len(tr))
    xv, yv = x[va, None], y[va]

    def evaluate(m: nn.Module) -> dict[str, float]:
        # Predictive NLL of the Monte Carlo mixture (32 weight samples, a fixed random stream).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            return {"loss": _nll(m.predictive(xv, samples=32), yv)}

    return Task(
        model,
        est.param_groups(model),
        sampler(x[tr, None], y[tr], batch_size=64),
        lambda m, b: m.loss(*b),
        evaluate,
        stochastic=True,
    )


register(
    Workload(
        "mdn",
        "hidlr.uq MDN (5 components) on the inverse-sine problem; trunk / logits / loc / scale (K=4); Adam; val = NLL",
        _build_mdn,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=600,
        quick_steps=100,
        batch_size=128,
        target=0.1,
        ratios={"logits": 10.0, "loc": 10.0, "scale": 10.0},
    )
)
register(
    Workload(
        "bnn",
        "hidlr.uq BNN (50 hidden, local reparam., learned noise) on 1-D regression; "
        "means / scales / noise (K=3); Adam; val = predictive NLL",
        _build_bnn,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=600,
        quick_steps=80,
        batch_size=64,
        target=0.15,
        ratios={"scales": 10.0, "noise": 10.0},
    )
)
