"""Full fine-tuning workload on scikit-learn's bundled 8x8 digits (no download).

- ``digits-finetune``: a LayerNorm MLP is pretrained inside the benchmark on the digits 0-4, then
  every weight is fine-tuned on a small training set of the digits 5-9 (200 images) with a fresh
  head; groups lower layer / upper layer / head (K=3), the split layer-wise rates are made for;
  Adam. Validation on held-out images of the digits 5-9.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from hidlr.bench.lr.wl_digits import digits_split
from hidlr.bench.lr.workloads import (
    ADAM_GRID,
    Task,
    Workload,
    ce_loss,
    classification_eval,
    register,
    sampler,
)

N_FINETUNE = 200
PRETRAIN_STEPS = 300


class Backbone(nn.Module):
    """Two LayerNorm-ReLU layers and a head: (B, 64) -> logits (B, classes)."""

    def __init__(self, classes: int = 5, width: int = 128) -> None:
        super().__init__()
        self.lower = nn.Sequential(nn.Linear(64, width), nn.LayerNorm(width), nn.ReLU())
        self.upper = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.upper(self.lower(x)))


def _subset(x: torch.Tensor, y: torch.Tensor, lo: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of the digits lo..lo+4, labels shifted to 0..4."""
    keep = (y >= lo) & (y < lo + 5)
    return x[keep], y[keep] - lo


@functools.lru_cache(maxsize=8)
def pretrained(seed: int) -> dict[str, torch.Tensor]:
    """Weights of a :class:`Backbone` trained with Adam (lr 3e-3, 300 steps) on the digits 0-4."""
    xtr, ytr, _, _ = digits_split(seed)
    xs, ys = _subset(xtr, ytr, 0)
    torch.manual_seed(2000 + seed)
    model = Backbone()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    draw = sampler(xs, ys, batch_size=128)
    gen = torch.Generator().manual_seed(2000 + seed)
    for _ in range(PRETRAIN_STEPS):
        opt.zero_grad()
        ce_loss(model, draw(gen)).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _build_finetune(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    xt, yt = _subset(xtr, ytr, 5)
    xv, yv = _subset(xva, yva, 5)
    model = Backbone()
    model.load_state_dict(pretrained(seed))
    torch.manual_seed(seed)
    model.head = nn.Linear(model.head.in_features, 5)  # a fresh head for the new classes
    groups = [{"name": name, "params": list(getattr(model, name).parameters())} for name in ("lower", "upper", "head")]
    return Task(
        model, groups, sampler(xt[:N_FINETUNE], yt[:N_FINETUNE], batch_size=32), ce_loss, classification_eval(xv, yv)
    )


register(
    Workload(
        "digits-finetune",
        f"LayerNorm MLP pretrained on digits 0-4, fully fine-tuned on "
        f"{N_FINETUNE} images of 5-9 with a fresh head; lower / upper / head (K=3); Adam",
        _build_finetune,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=300,
        quick_steps=60,
        batch_size=32,
        target=0.2,
        ratios={"head": 10.0},
        has_acc=True,
    )
)
