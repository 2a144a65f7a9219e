"""Workloads on scikit-learn's bundled ``load_digits`` (1797 8x8 images, 10 classes; no download).

- ``digits-mlp-bias``: MLP, groups bias vs weights (K=2), Adam.
- ``digits-cnn-bn``: BatchNorm CNN, groups normalisation vs rest (K=2), Adam.
- ``digits-mlp-head-sgd``: LayerNorm MLP, groups head vs body (K=2), SGD with momentum.
- ``digits-lora``: an MLP pretrained on digits, then adapted with LoRA to mirrored digits with
  permuted labels; groups LoRA A / LoRA B / head (K=3), Adam.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from hidlr.bench.lr.workloads import (
    ADAM_GRID,
    SGD_GRID,
    Task,
    Workload,
    by_predicate,
    ce_loss,
    classification_eval,
    register,
    sampler,
    split_data,
)

N_VAL = 397


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``load_digits``: images (1797, 64) in [0, 1], labels (1797,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target, dtype=torch.long)


def digits_split(seed: int) -> tuple[torch.Tensor, ...]:
    """Train/val split of digits, features z-scored with training statistics."""
    x, y = _digits()
    tr, va = split_data(len(y), N_VAL, seed)
    mu, sd = x[tr].mean(0), x[tr].std(0) + 0.1
    return (x[tr] - mu) / sd, y[tr], (x[va] - mu) / sd, y[va]


def _mlp(widths: list[int], norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 2):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if norm:
            layers.append(nn.LayerNorm(widths[i + 1]))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def _build_mlp_bias(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    torch.manual_seed(seed)
    model = _mlp([64, 128, 128, 10])
    groups = by_predicate(model, [("bias", lambda n, p: n.endswith("bias"))], rest="weight")
    return Task(model, groups, sampler(xtr, ytr, batch_size=64), ce_loss, classification_eval(xva, yva))


class _ConvNet(nn.Module):
    """Small BatchNorm CNN: (B, 64) flattened 8x8 images -> logits (B, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.view(-1, 1, 8, 8)))


def _build_cnn_bn(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    torch.manual_seed(seed)
    model = _ConvNet()
    norm_ids = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    groups = by_predicate(model, [("norm", lambda n, p: id(p) in norm_ids)], rest="rest")
    return Task(model, groups, sampler(xtr, ytr, batch_size=64), ce_loss, classification_eval(xva, yva))


def _build_mlp_head_sgd(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    torch.manual_seed(seed)
    model = _mlp([64, 128, 128, 10], norm=True)
    head = model[-1]
    head_ids = {id(p) for p in head.parameters()}
    groups = by_predicate(model, [("head", lambda n, p: id(p) in head_ids)], rest="body")
    return Task(model, groups, sampler(xtr, ytr, batch_size=64), ce_loss, classification_eval(xva, yva))


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha/r) * B @ A``.

    Shapes: A (r, in_features), B (out_features, r) initialised to zero, so the adapted layer
    starts equal to the frozen one. Input (..., in_features) -> output (..., out_features).
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scale = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


@functools.lru_cache(maxsize=8)
def _pretrained(seed: int) -> dict[str, torch.Tensor]:
    """Weights of an MLP (64-128-128-10) trained with Adam on the source task (plain digits)."""
    xtr, ytr, _, _ = digits_split(seed)
    torch.manual_seed(1000 + seed)
    model = _mlp([64, 128, 128, 10])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    draw = sampler(xtr, ytr, batch_size=128)
    gen = torch.Generator().manual_seed(1000 + seed)
    for _ in range(300):
        opt.zero_grad()
        ce_loss(model, draw(gen)).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# Target task: mirrored images (left-right) with the labels permuted.
_PERM = torch.tensor([3, 8, 0, 6, 1, 9, 2, 5, 4, 7])


def _shift(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.view(-1, 8, 8).flip(-1).reshape(-1, 64), _PERM[y]


def _build_lora(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    xtr, ytr = _shift(xtr[:500], ytr[:500])
    xva, yva = _shift(xva, yva)
    base = _mlp([64, 128, 128, 10])
    base.load_state_dict(_pretrained(seed))
    torch.manual_seed(seed)
    model = nn.Sequential(
        LoRALinear(base[0]), nn.ReLU(), LoRALinear(base[2]), nn.ReLU(), nn.Linear(128, 10)
    )  # a fresh head for the new label set
    groups = by_predicate(
        model,
        [("lora_A", lambda n, p: n.endswith("lora_A")), ("lora_B", lambda n, p: n.endswith("lora_B"))],
        rest="head",
    )
    return Task(model, groups, sampler(xtr, ytr, batch_size=32), ce_loss, classification_eval(xva, yva))


register(
    Workload(
        "digits-mlp-bias",
        "MLP 64-128-128-10 on digits; bias vs weights (K=2); Adam",
        _build_mlp_bias,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=400,
        quick_steps=100,
        batch_size=64,
        target=0.08,
        ratios={"bias": 10.0},
        has_acc=True,
    )
)
register(
    Workload(
        "digits-cnn-bn",
        "BatchNorm CNN on 8x8 digits; BN params vs rest (K=2); Adam",
        _build_cnn_bn,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=400,
        quick_steps=60,
        batch_size=64,
        target=0.1,
        ratios={"norm": 10.0},
        has_acc=True,
    )
)
register(
    Workload(
        "digits-mlp-head-sgd",
        "LayerNorm MLP on digits; head vs body (K=2); SGD momentum 0.9",
        _build_mlp_head_sgd,
        "sgd",
        1e-2,
        SGD_GRID,
        steps=400,
        quick_steps=100,
        batch_size=64,
        target=0.09,
        ratios={"head": 10.0},
        has_acc=True,
    )
)
register(
    Workload(
        "digits-lora",
        "pretrained MLP, LoRA r=4 to mirrored digits with permuted labels; LoRA A / LoRA B / head (K=3); Adam",
        _build_lora,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=400,
        quick_steps=100,
        batch_size=32,
        target=0.2,
        ratios={"lora_B": 16.0},
        has_acc=True,
    )
)
