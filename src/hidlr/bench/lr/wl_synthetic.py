"""Workloads on generated data (no download).

- ``multitask-heads``: shared trunk with 24 binary-classification heads; trunk + one group per
  head (K=25), Adam. A miniature of the 40-attribute CelebA setting.
- ``nam``: neural additive model, one subnetwork per input feature plus the output bias
  (K=9), Adam.
- ``seq-transformer``: one-layer pre-norm transformer reversing token sequences; groups
  embeddings / attention / MLP / norms / head (K=5), Adam.
- ``noisy-quadratic``: DeepOBS-style 100-D noisy quadratic with a deep-learning-like spectrum
  (90% eigenvalues in (0, 1), 10% in (30, 60), randomly rotated); four coordinate blocks (K=4),
  SGD with momentum.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from hidlr.bench.lr.workloads import (
    ADAM_GRID,
    Task,
    Workload,
    by_predicate,
    log_grid,
    register,
    sampler,
    split_data,
)

# The noise floor favours small rates: this grid (3.2e-5 .. 3.2e-2) brackets the best one.
QUAD_GRID = log_grid(-4.5, -1.5)

# --------------------------------------------------------------------------------------- multitask
N_TASKS = 24


class MultiHead(nn.Module):
    """Trunk (B, 16) -> (B, 64) and ``tasks`` linear heads; output logits (B, tasks)."""

    def __init__(self, tasks: int = N_TASKS) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(64, 1) for _ in range(tasks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.trunk(x)
        return torch.cat([h(z) for h in self.heads], dim=-1)


def _bce(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x), y)


def _build_multitask(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n = 3000
    x = torch.randn(n, 16, generator=g)
    w1 = torch.randn(16, 32, generator=g) / 4.0
    v = torch.randn(32, N_TASKS, generator=g) / math.sqrt(32)
    scale = torch.exp(torch.empty(N_TASKS).uniform_(math.log(0.5), math.log(8.0), generator=g))
    logits = torch.tanh(x @ w1) @ v * scale
    y = (torch.rand(n, N_TASKS, generator=g) < torch.sigmoid(logits)).float()
    tr, va = split_data(n, 1000, seed)
    torch.manual_seed(seed)
    model = MultiHead()
    groups = [{"name": "trunk", "params": list(model.trunk.parameters())}]
    groups += [{"name": f"head{t:02d}", "params": list(h.parameters())} for t, h in enumerate(model.heads)]

    def evaluate(m: nn.Module) -> dict[str, float]:
        out = m(x[va])
        return {
            "loss": float(nn.functional.binary_cross_entropy_with_logits(out, y[va])),
            "acc": float(((out > 0).float() == y[va]).float().mean()),
        }

    return Task(model, groups, sampler(x[tr], y[tr], batch_size=128), _bce, evaluate)


# --------------------------------------------------------------------------------------------- NAM
_SHAPES: list[Callable[[torch.Tensor], torch.Tensor]] = [
    lambda t: torch.sin(math.pi * t),
    lambda t: 2 * t**2 - 0.67,
    lambda t: 0.5 * t,
    lambda t: torch.exp(1.5 * t) - 1.2,
    lambda t: (t > 0.2).float() - 0.4,
    lambda t: 3 * t.abs() - 1.5,
    lambda t: 0.5 * torch.cos(2 * math.pi * t),
    lambda t: 2 * torch.tanh(4 * t),
]


class NAM(nn.Module):
    """Neural additive model: y(x) = bias + sum_j f_j(x_j); x (B, F) -> y (B,)."""

    def __init__(self, features: int, hidden: int = 32) -> None:
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 16), nn.ReLU(), nn.Linear(16, 1))
            for _ in range(features)
        )
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias + sum(net(x[:, j : j + 1]) for j, net in enumerate(self.nets)).squeeze(-1)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def _build_nam(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n, f = 3000, len(_SHAPES)
    x = torch.rand(n, f, generator=g) * 2 - 1
    y = sum(fn(x[:, j]) for j, fn in enumerate(_SHAPES)) + 0.3 * torch.randn(n, generator=g)
    tr, va = split_data(n, 1000, seed)
    torch.manual_seed(seed)
    model = NAM(f)
    groups = [{"name": f"f{j}", "params": list(net.parameters())} for j, net in enumerate(model.nets)]
    groups.append({"name": "bias", "params": [model.bias]})

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"loss": float(nn.functional.mse_loss(m(x[va]), y[va]))}

    return Task(model, groups, sampler(x[tr], y[tr], batch_size=128), _mse, evaluate)


# ------------------------------------------------------------------------------------- transformer
VOCAB, SEQ, LABEL_NOISE = 12, 12, 0.1


class TinyTransformer(nn.Module):
    """One pre-norm encoder layer: tokens (B, L) -> logits (B, L, VOCAB)."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.randn(SEQ, d) * 0.5)
        self.layer = nn.TransformerEncoderLayer(
            d, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.layer(self.tok(x) + self.pos)))


def _seq_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))


def _reverse(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n random sequences (n, SEQ) and their reversals, each target token replaced by a random
    one with probability LABEL_NOISE (so the best achievable loss is about 0.5 nats)."""
    x = torch.randint(0, VOCAB, (n, SEQ), generator=gen)
    noise = torch.rand(n, SEQ, generator=gen) < LABEL_NOISE
    y = torch.where(noise, torch.randint(0, VOCAB, (n, SEQ), generator=gen), x.flip(-1))
    return x, y


def _build_transformer(seed: int) -> Task:
    xva, yva = _reverse(1024, torch.Generator().manual_seed(10_000 + seed))
    torch.manual_seed(seed)
    model = TinyTransformer()

    def draw(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return _reverse(64, gen)

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(xva)
        return {"loss": float(_seq_loss(m, (xva, yva))), "acc": float((logits.argmax(-1) == yva).float().mean())}

    groups = by_predicate(
        model,
        [
            ("embed", lambda n, p: n.startswith(("tok", "pos"))),
            ("attn", lambda n, p: "self_attn" in n),
            ("mlp", lambda n, p: "linear" in n),
            ("norm", lambda n, p: "norm" in n),
        ],
        rest="head",
    )
    return Task(model, groups, draw, _seq_loss, evaluate)


# -------------------------------------------------------------------------------- noisy quadratic
DIM, BLOCKS = 100, 4


class Quadratic(nn.Module):
    """The parameter vector w (DIM,) stored as BLOCKS equal blocks; forward returns w."""

    def __init__(self, w0: torch.Tensor) -> None:
        super().__init__()
        self.blocks = nn.ParameterList(nn.Parameter(b.clone()) for b in w0.chunk(BLOCKS))

    def forward(self) -> torch.Tensor:
        return torch.cat(list(self.blocks))


def _build_quadratic(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    eig = torch.cat([torch.rand(90, generator=g), 30 + 30 * torch.rand(10, generator=g)])
    q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=g))
    hess = (q * eig) @ q.T
    hess = (hess + hess.T) / 2
    model = Quadratic(3.0 * torch.randn(DIM, generator=g))

    def draw(gen: torch.Generator) -> torch.Tensor:
        return torch.randn(32, DIM, generator=gen)

    def loss(m: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        d = m() - xb
        return 0.5 * ((d @ hess) * d).sum(-1).mean()

    def evaluate(m: nn.Module) -> dict[str, float]:
        # Exact expected loss over x ~ N(0, I): 0.5 w'Hw + 0.5 tr(H).
        w = m()
        return {"loss": float(0.5 * w @ hess @ w + 0.5 * eig.sum())}

    groups = [{"name": f"block{i}", "params": [p]} for i, p in enumerate(model.blocks)]
    return Task(model, groups, draw, loss, evaluate)


register(
    Workload(
        "multitask-heads",
        f"trunk + {N_TASKS} binary heads on generated data; trunk + one group per head (K={N_TASKS + 1}); Adam",
        _build_multitask,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=400,
        quick_steps=50,
        batch_size=128,
        target=0.52,
        ratios={f"head{t:02d}": 10.0 for t in range(N_TASKS)},
        has_acc=True,
    )
)
register(
    Workload(
        "nam",
        f"neural additive model, {len(_SHAPES)} feature subnetworks + bias (K={len(_SHAPES) + 1}); Adam",
        _build_nam,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=500,
        quick_steps=60,
        batch_size=128,
        target=0.15,
        ratios={"bias": 10.0},
    )
)
register(
    Workload(
        "seq-transformer",
        "1-layer transformer reversing length-12 sequences, 10% label noise; "
        "embed / attn / mlp / norm / head (K=5); Adam",
        _build_transformer,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=500,
        quick_steps=60,
        batch_size=64,
        target=0.55,
        ratios={"head": 10.0},
        has_acc=True,
    )
)
register(
    Workload(
        "noisy-quadratic",
        "100-D noisy quadratic, spectrum 90% in (0,1), 10% in (30,60), "
        "rotated; 4 coordinate blocks (K=4); SGD momentum 0.9",
        _build_quadratic,
        "sgd",
        1e-2,
        QUAD_GRID,
        steps=500,
        quick_steps=120,
        batch_size=32,
        target=255.0,
    )
)
