"""Post-hoc variance scaling: one spread factor fitted on held-out rows by likelihood.

A fitted predictive mixture ``p(y | x)`` is widened or narrowed about its own mean by a factor
``s > 0``: the law of ``m(x) + s * (Y - m(x))`` with ``Y ~ p(. | x)`` and ``m(x)`` its mean. Every
component's mean moves towards (``s < 1``) or away from ``m(x)`` and its scale is multiplied by
``s``, so the predictive mean is kept, the variance (aleatoric and epistemic parts alike) is
multiplied by ``s**2`` and the density is exact (an affine change of variable). :func:`fit_spread`
chooses ``s`` by maximising the mean log-likelihood of held-out rows plus a weak Gaussian prior on
``log s`` centred on 1 (so a handful of rows cannot move it far): a proper scoring rule, one
number, no retraining (Levi et al. 2019, "Evaluating and calibrating uncertainty prediction in
regression tasks"; Laves et al. 2020, sigma scaling).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture

#: Range searched for the spread factor.
SPREAD_BOUNDS = (1.0 / 30.0, 30.0)
#: Standard deviation of the Gaussian prior on ``log s`` (about a factor 2 at two standard deviations).
LOG_SPREAD_PRIOR_SD = 0.35


def dilate(dist: GaussianMixture, factor: float | Tensor) -> GaussianMixture:
    """The law of ``m + factor * (Y - m)`` for ``Y ~ dist`` (``(n, K)`` components), ``m = dist.mean``
    ``(n,)``; ``factor``: a positive scalar."""
    f = torch.as_tensor(factor, dtype=dist.loc.dtype, device=dist.loc.device)
    if f.dim() != 0 or not bool(torch.isfinite(f)) or not bool(f > 0):
        raise ValueError(f"factor must be a positive finite scalar, got {factor!r}")
    mean = dist.mean[:, None]
    return GaussianMixture(
        dist.logits, mean + f * (dist.loc - mean), f * dist.scale, members=dist.members, validate_args=False
    )


def fit_spread(dist: GaussianMixture, y: Tensor, prior_sd: float | None = LOG_SPREAD_PRIOR_SD) -> float:
    """The factor ``s`` of :func:`dilate` that maximises ``sum log p_s(y_i) - (log s)**2 / (2 prior_sd**2)``.

    ``dist``: predictive mixtures of held-out rows ``(n, K)``; ``y``: their targets ``(n,)``;
    ``prior_sd``: standard deviation of the prior on ``log s`` (``None``: plain maximum likelihood,
    which for a single Gaussian is ``s = sqrt(mean(z**2))``). Computed in float64; returns 1.0
    when the held-out log-likelihood is not finite for any factor.
    """
    if prior_sd is not None and not prior_sd > 0:
        raise ValueError(f"prior_sd must be positive or None, got {prior_sd!r}")
    y = torch.as_tensor(y).to(device=dist.loc.device, dtype=torch.float64).reshape(-1)
    if y.shape[0] != dist.loc.shape[0]:
        raise ValueError(f"y has {y.shape[0]} rows, the distribution {dist.loc.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError("fit_spread needs at least one held-out row")
    d64 = GaussianMixture(
        dist.logits.double(), dist.loc.double(), dist.scale.double(), members=dist.members, validate_args=False
    )
    mean = d64.mean[:, None]
    centred, log_w = d64.loc - mean, d64.log_weights
    resid = y[:, None] - mean

    def objective(log_s: float) -> float:
        s = math.exp(log_s)
        z = (resid - s * centred) / (s * d64.scale)
        ll = torch.logsumexp(log_w - 0.5 * z**2 - torch.log(s * d64.scale), dim=-1) - 0.5 * math.log(2 * math.pi)
        total = float(ll.sum())
        if not math.isfinite(total):
            return math.inf
        penalty = 0.0 if prior_sd is None else log_s**2 / (2 * prior_sd**2)
        return -total + penalty

    from scipy.optimize import minimize_scalar

    lo, hi = (math.log(b) for b in SPREAD_BOUNDS)
    if not math.isfinite(objective(0.0)) and not math.isfinite(objective(hi)):
        return 1.0
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    best = float(res.x) if math.isfinite(float(res.fun)) else 0.0
    return math.exp(best) if objective(best) <= objective(0.0) else 1.0
