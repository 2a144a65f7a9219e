"""Scores of a predicted angle distribution against the known conditional of the rotated digits.

The headline is the Monte Carlo KL divergence from the truth to the prediction per test image,
``KL_i = E_{y ~ p0(.|x_i)} [log p0(y|x_i) - log p(y|x_i)]`` estimated with ``draws`` fresh draws
from ``p0`` per image, then averaged over images of a class or group (standard error over images).
Beside it: test NLL, CRPS and 90% coverage on the drawn test targets, and for the two-mode images
how the predicted mass splits between the two modes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hidlr.uq import metrics
from hidlr.uq.data.rotdigits import RotatedDigits
from hidlr.uq.distributions import GaussianMixture

GROUPS = ("all", "symmetric", "asymmetric", "bimodal")
MODE_HALF_WIDTH = 3.0  # a mode's window: +- this many noise standard deviations


def kl_per_row(truth: GaussianMixture, model: GaussianMixture, draws: int, seed: int) -> Tensor:
    """``(n,)`` Monte Carlo estimates of ``KL(truth_i || model_i)`` from ``draws`` draws of ``truth_i`` each.

    Unbiased per row; its Monte Carlo error shrinks like ``1 / sqrt(draws)``.
    """
    if not (isinstance(draws, int) and draws >= 1):
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    if truth.loc.shape[0] != model.loc.shape[0]:
        raise ValueError(f"truth covers {truth.loc.shape[0]} rows, model {model.loc.shape[0]}")
    gen = torch.Generator(device=truth.loc.device).manual_seed(seed)
    y = truth.sample((draws,), generator=gen)  # (draws, n)
    with torch.no_grad():
        diff = truth.log_prob(y).double() - model.log_prob(y.to(model.loc)).double()
    return diff.mean(0)


def group_masks(data: RotatedDigits) -> dict[str, Tensor]:
    """Row masks ``(n,)`` of the groups: all, symmetric classes, the others, two-mode images."""
    sym = data.symmetric
    return {"all": torch.ones_like(sym), "symmetric": sym, "asymmetric": ~sym, "bimodal": data.bimodal}


def _mean_se(v: Tensor) -> tuple[float, float]:
    v = v.double()
    n = v.shape[0]
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else math.nan


def mode_split(dist: GaussianMixture, data: RotatedDigits) -> dict[str, float] | None:
    """On the two-mode images: mean predicted mass within ``MODE_HALF_WIDTH`` noise sd of either
    mode (truth: 0.997) and mean share of the smaller of the two (truth: 0.5)."""
    rows = data.bimodal
    if not bool(rows.any()):
        return None
    d = dist[rows]
    w = MODE_HALF_WIDTH * data.noise
    masses = []
    for centre in (data.angle[rows], data.partner[rows]):
        c = centre.to(d.loc)
        masses.append(d.cdf(c + w) - d.cdf(c - w))
    m1, m2 = masses
    total = m1 + m2
    minor = torch.minimum(m1, m2) / total.clamp_min(1e-300)
    return {"mass_at_modes": float(total.mean()), "minor_share": float(minor.mean())}


def phantom_mass(dist: GaussianMixture, data: RotatedDigits) -> float | None:
    """On images of the asymmetric classes whose partner angle lies in the range: mean predicted
    mass within ``MODE_HALF_WIDTH`` noise sd of the partner angle, a mode that is not there
    (truth: 0; a model that treats the digit as symmetric: about 0.5)."""
    rows = ~data.symmetric & (data.partner.abs() <= data.half_range)
    if not bool(rows.any()):
        return None
    d = dist[rows]
    c = data.partner[rows].to(d.loc)
    w = MODE_HALF_WIDTH * data.noise
    return float((d.cdf(c + w) - d.cdf(c - w)).mean())


def score(dist: GaussianMixture, data: RotatedDigits, draws: int, seed: int) -> dict[str, Any]:
    """Every score of one prediction ``dist`` (degrees) on ``data``: per group and per class."""
    truth = data.true_distribution()
    kl = kl_per_row(truth, dist, draws, seed)
    y = data.y.to(dist.loc)
    nll = -dist.log_prob(y).double()
    crps = metrics.crps_values(dist, y)
    out: dict[str, Any] = {"groups": {}, "classes": {}}
    for name, mask in group_masks(data).items():
        if not bool(mask.any()):
            continue
        kl_m, kl_se = _mean_se(kl[mask])
        out["groups"][name] = {
            "n": int(mask.sum()),
            "kl": kl_m,
            "kl_se": kl_se,
            "nll": float(nll[mask].mean()),
            "crps": float(crps[mask].mean()),
            "cov90": float(metrics.coverage(dist[mask], y[mask], 0.9)),
        }
    for c in sorted(int(v) for v in torch.unique(data.label)):
        mask = data.label == c
        kl_m, kl_se = _mean_se(kl[mask])
        out["classes"][str(c)] = {"n": int(mask.sum()), "kl": kl_m, "kl_se": kl_se, "nll": float(nll[mask].mean())}
    out["mode_split"] = mode_split(dist, data)
    out["phantom_mass"] = phantom_mass(dist, data)
    return out


def example_rows(data: RotatedDigits) -> list[int]:
    """Test images shown in the density plot: one two-mode image of each symmetric class and one
    image each of 2, 4 and 7, all turned by 40 to 120 degrees (the first such row of each)."""
    picks = []
    turned = (data.angle.abs() > 40) & (data.angle.abs() < 120)
    for c, need_two in ((0, True), (1, True), (8, True), (2, False), (4, False), (7, False)):
        ok = (data.label == c) & turned & (data.bimodal if need_two else torch.ones_like(turned))
        idx = torch.nonzero(ok).reshape(-1)
        if idx.numel():
            picks.append(int(idx[0]))
    return picks


def densities(dist: GaussianMixture, data: RotatedDigits, rows: list[int], points: int = 361) -> dict[str, Any]:
    """True and predicted densities on an angle grid for ``rows`` of ``data`` (for the plot)."""
    lim = data.half_range + 4.0 * data.noise
    grid = torch.linspace(-lim, lim, points, dtype=torch.float64)
    truth = data.true_distribution()
    idx = torch.tensor(rows, dtype=torch.long)
    g = grid[:, None].expand(points, len(rows))
    return {
        "grid": grid.tolist(),
        "rows": rows,
        "label": data.label[idx].tolist(),
        "angle": data.angle[idx].tolist(),
        "true": np.exp(truth[idx].log_prob(g).numpy()).T.tolist(),
        "model": np.exp(dist[idx].log_prob(g.to(dist.loc)).double().cpu().numpy()).T.tolist(),
        "images": data.images[idx].tolist(),
    }
