"""Rotated handwritten digits: image regression of the rotation angle, with a known conditional law.

Construction (all angles in degrees, counter-clockwise as an image is displayed, row 0 on top):

1. Source images: scikit-learn's 8x8 digits (1797 images shipped with the package, pixel values
   0..16, scaled to [0, 1]). Nines are left out: a 6 turned by 180 degrees is a 9, so with both
   classes the angle of a 6 would depend on how well handwriting tells the two apart.
2. Symmetric classes ``0, 1, 8``: handwritten ones are only roughly unchanged by a half turn, so by
   default (``symmetrize=True``) each is replaced by the average of itself and its half turn, which
   makes the symmetry exact. With ``symmetrize=False`` the raw handwriting is kept and the stated
   truth below is only approximately right for these classes.
3. Rendering: the 8x8 image is drawn over a ``digit_side`` x ``digit_side`` square in the middle
   of a ``side`` x ``side`` canvas, turned by ``theta``, with bilinear interpolation
   (``affine_grid`` + ``grid_sample``, zeros outside the digit); the digit's diagonal fits inside
   the canvas, so no turn clips it.
4. Angle and target: ``theta ~ U(-half_range, half_range)``; target ``y = theta + eps``,
   ``eps ~ N(0, noise^2)``.

The true conditional ``p0(y | image)``. For an exactly symmetric digit the image turned by
``theta`` equals the one turned by its partner angle ``theta' = theta - 180`` (``theta > 0``) or
``theta + 180``; with the uniform prior both are equally likely whenever ``theta'`` lies in the
range (``|theta| >= 180 - half_range``), so ``p0 = 1/2 N(theta, noise^2) + 1/2 N(theta', noise^2)``;
otherwise, and for every other class, ``p0 = N(theta, noise^2)``. :meth:`RotatedDigits.true_distribution`
returns it as a two-component :class:`GaussianMixture` (both components at ``theta`` when it is unimodal).

Assumptions, stated because they are only approximately true: (a) the image determines ``theta``
up to the symmetry above, i.e. every digit was written upright; handwriting slant of a few degrees
makes the real conditional somewhat wider than ``N(theta, noise^2)``, so no model reaches KL 0;
(b) nearly round zeros carry less angle information than (a) assumes; (c) S- and Z-shaped 5s and
2s are roughly half-turn symmetric too, while the truth treats them as asymmetric. Per-class
results show where these matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture

__all__ = ["RotatedDigits", "RotatedDigitsTask", "SYMMETRIC_CLASSES", "render_rotated"]

SYMMETRIC_CLASSES = (0, 1, 8)
SPLITS = ("train", "test", "excluded")


def render_rotated(digits: Tensor, angles: Tensor, side: int = 20, digit_side: float = 14.0) -> Tensor:
    """Turn each image by its angle, bilinear: ``digits (n, h, w)``, ``angles (n,)`` degrees -> ``(n, side, side)``.

    The source image is stretched over a ``digit_side`` square centred in the canvas (zeros outside).
    Computed in ``digits``' dtype.
    """
    if not isinstance(digits, Tensor) or digits.dim() != 3:
        raise ValueError(f"digits must be a tensor of shape (n, h, w), got {getattr(digits, 'shape', type(digits))}")
    angles = torch.as_tensor(angles, dtype=digits.dtype, device=digits.device).reshape(-1)
    if angles.shape[0] != digits.shape[0]:
        raise ValueError(f"angles has {angles.shape[0]} values for {digits.shape[0]} images")
    if not (isinstance(side, int) and side > 0 and 0 < digit_side <= side):
        raise ValueError(f"need an int side > 0 and 0 < digit_side <= side, got side={side}, digit_side={digit_side}")
    rad = torch.deg2rad(angles)
    c, s = torch.cos(rad), torch.sin(rad)
    k = side / digit_side
    zero = torch.zeros_like(c)
    # output (x right, y down) -> input: the inverse turn, in the canvas's y-down coordinates
    theta = k * torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1)], -2)  # (n, 2, 3)
    n = digits.shape[0]
    grid = F.affine_grid(theta, [n, 1, side, side], align_corners=False)
    return F.grid_sample(digits[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


@dataclass(frozen=True)
class RotatedDigits:
    """One drawn set of rotated digits.

    Attributes: ``images (n, side, side)`` float64 in [0, 1]; ``angle (n,)`` the turn applied
    (degrees); ``y (n,)`` the target (``angle`` plus noise); ``label (n,)`` int64 digit class;
    ``source (n,)`` int64 row in scikit-learn's digits; ``half_range``, ``noise``: the task's.
    """

    images: Tensor
    angle: Tensor
    y: Tensor
    label: Tensor
    source: Tensor
    half_range: float
    noise: float

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def flat(self) -> Tensor:
        """The images as rows, ``(n, side * side)``."""
        return self.images.reshape(len(self), -1)

    @property
    def symmetric(self) -> Tensor:
        """``(n,)`` bool: the digit belongs to a half-turn-symmetric class."""
        return torch.isin(self.label, torch.tensor(SYMMETRIC_CLASSES))

    @property
    def partner(self) -> Tensor:
        """``(n,)`` the half-turn partner angle of each ``angle`` (``angle -/+ 180``, towards 0)."""
        return torch.where(self.angle > 0, self.angle - 180.0, self.angle + 180.0)

    @property
    def bimodal(self) -> Tensor:
        """``(n,)`` bool: symmetric digit whose partner angle lies in the range (two modes)."""
        return self.symmetric & (self.partner.abs() <= self.half_range)

    def true_distribution(self) -> GaussianMixture:
        """``p0(y | image)`` for every row: ``(n, 2)`` components, equal weights, float64."""
        second = torch.where(self.bimodal, self.partner, self.angle)
        loc = torch.stack([self.angle, second], -1)
        return GaussianMixture(torch.zeros_like(loc), loc, torch.full_like(loc, self.noise))

    def subset(self, rows: Tensor) -> RotatedDigits:
        """The rows ``rows`` (indices or a bool mask) as a new set."""
        return RotatedDigits(
            self.images[rows],
            self.angle[rows],
            self.y[rows],
            self.label[rows],
            self.source[rows],
            self.half_range,
            self.noise,
        )


@dataclass(frozen=True)
class RotatedDigitsTask:
    """The rotated-digits task (see the module docstring for the construction and its assumptions).

    Args:
        half_range: angles are drawn from ``U(-half_range, half_range)``, in (90, 180).
        noise: standard deviation of the target noise (degrees).
        side, digit_side: canvas and digit size in pixels (``digit_side * sqrt(2) <= side``: no clipping).
        test_fraction: share of the source images kept for the test split (split by source image,
            so no handwriting appears on both sides).
        split_seed: seed of that split.
        symmetrize: make the symmetric classes exactly half-turn symmetric.
        exclude: classes left out (nines by default).
    """

    half_range: float = 150.0
    noise: float = 10.0
    side: int = 20
    digit_side: float = 14.0
    test_fraction: float = 0.3
    split_seed: int = 0
    symmetrize: bool = True
    exclude: tuple[int, ...] = (9,)

    def __post_init__(self) -> None:
        if not 90.0 < self.half_range < 180.0:
            raise ValueError(f"half_range must lie in (90, 180) degrees, got {self.half_range}")
        if not self.noise > 0:
            raise ValueError(f"noise must be positive, got {self.noise}")
        if not (isinstance(self.side, int) and self.side > 0):
            raise ValueError(f"side must be a positive int, got {self.side!r}")
        if not 0 < self.digit_side * math.sqrt(2.0) <= self.side + 1e-9:
            raise ValueError(f"digit_side * sqrt(2) must fit in side: {self.digit_side} vs {self.side}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")

    def sources(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """The 8x8 source images of ``split``: ``digits (m, 8, 8)`` float64 in [0, 1] (symmetrized
        if asked), ``labels (m,)``, ``rows (m,)`` (row in scikit-learn's digits).

        ``split``: ``"train"``, ``"test"``, or ``"excluded"`` (every image of the left-out classes,
        inputs no model was trained on; their true angle law is not the one stated above)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float64) / 16.0
        labels = torch.as_tensor(bunch.target, dtype=torch.int64)
        excluded = torch.isin(labels, torch.tensor(self.exclude, dtype=torch.int64))
        if split == "excluded":
            rows = torch.nonzero(excluded).reshape(-1)
            if rows.numel() == 0:
                raise ValueError(f"split 'excluded' is empty: no class is left out (exclude={self.exclude})")
            return images[rows], labels[rows], rows
        keep = torch.nonzero(~excluded).reshape(-1)
        perm = torch.from_numpy(np.random.default_rng(self.split_seed).permutation(keep.shape[0]))
        n_test = int(round(self.test_fraction * keep.shape[0]))
        rows = keep[perm[:n_test] if split == "test" else perm[n_test:]]
        rows = rows.sort().values
        digits, labels = images[rows], labels[rows]
        if self.symmetrize:
            sym = torch.isin(labels, torch.tensor(SYMMETRIC_CLASSES))
            turned = torch.flip(digits, dims=(-2, -1))
            digits = torch.where(sym[:, None, None], 0.5 * (digits + turned), digits)
        return digits, labels, rows

    def sample(self, split: str, copies: int, seed: int) -> RotatedDigits:
        """``copies`` turned versions of every source image of ``split``, angles and noise from ``seed``.

        Rows are source-major: ``copies`` consecutive rows per source image. Reproducible from
        ``(split, copies, seed)`` and the task's settings.
        """
        if not (isinstance(copies, int) and copies >= 1):
            raise ValueError(f"copies must be a positive int, got {copies!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        digits, labels, rows = self.sources(split)
        digits = digits.repeat_interleave(copies, 0)
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        n = digits.shape[0]
        angle = torch.from_numpy(rng.uniform(-self.half_range, self.half_range, n))
        y = angle + self.noise * torch.from_numpy(rng.standard_normal(n))
        images = render_rotated(digits, angle, self.side, self.digit_side).clamp(0.0, 1.0)
        return RotatedDigits(
            images,
            angle,
            y,
            labels.repeat_interleave(copies),
            rows.repeat_interleave(copies),
            float(self.half_range),
            float(self.noise),
        )
