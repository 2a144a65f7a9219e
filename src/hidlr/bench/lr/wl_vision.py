"""Residual CNN workload on scikit-learn's bundled 8x8 digits (no download).

- ``digits-resnet-bn``: a small ResNet (stem, two residual stages with BatchNorm, a strided
  projection shortcut, global pooling, linear head); groups convolutions / BatchNorm / head (K=3),
  Adam. Training batches are randomly shifted by up to one pixel (the usual augmentation).
"""

from __future__ import annotations

import torch
from torch import nn

from hidlr.bench.lr.wl_digits import digits_split
from hidlr.bench.lr.workloads import (
    ADAM_GRID,
    Task,
    Workload,
    by_predicate,
    ce_loss,
    classification_eval,
    register,
)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU.

    Input (B, c_in, H, W) -> output (B, c_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetDigits(nn.Module):
    """ResNet for flattened 8x8 images: (B, 64) -> logits (B, 10); 16 channels at 8x8, 32 at 4x4."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(width, width), BasicBlock(width, 2 * width, stride=2))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x.view(-1, 1, 8, 8)))))


def shifted_sampler(x: torch.Tensor, y: torch.Tensor, batch_size: int, max_shift: int = 1):
    """Batches of flattened 8x8 images (B, 64) drawn with replacement, each image translated by a
    random (dy, dx) in [-max_shift, max_shift]^2 with zero fill; labels (B,)."""
    n = x.shape[0]
    side = 8 + 2 * max_shift
    padded = nn.functional.pad(x.view(-1, 8, 8), (max_shift,) * 4)  # (n, side, side)
    rows = torch.arange(8)

    def draw(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        off = torch.randint(0, 2 * max_shift + 1, (batch_size, 2), generator=gen)
        r = (off[:, :1] + rows)[:, :, None] * side + (off[:, 1:] + rows)[:, None, :]  # (B, 8, 8)
        img = padded[idx].reshape(batch_size, -1).gather(1, r.reshape(batch_size, -1))
        return img, y[idx]

    return draw


def _build_resnet(seed: int) -> Task:
    xtr, ytr, xva, yva = digits_split(seed)
    torch.manual_seed(seed)
    model = ResNetDigits()
    norm_ids = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    head_ids = {id(p) for p in model.head.parameters()}
    groups = by_predicate(
        model, [("norm", lambda n, p: id(p) in norm_ids), ("head", lambda n, p: id(p) in head_ids)], rest="conv"
    )
    return Task(model, groups, shifted_sampler(xtr, ytr, batch_size=64), ce_loss, classification_eval(xva, yva))


register(
    Workload(
        "digits-resnet-bn",
        "ResNet (stem + 2 residual stages, BatchNorm) on digits shifted by <= 1 px; conv / BN / head (K=3); Adam",
        _build_resnet,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=500,
        quick_steps=80,
        batch_size=64,
        target=0.1,
        ratios={"norm": 10.0, "head": 10.0},
        has_acc=True,
    )
)
