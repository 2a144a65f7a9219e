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

When the same rows also chose the epoch whose weights are kept (early stopping), they are scored at
the epoch where they happened to look best, and a factor fitted on them comes out too small.
:class:`CrossFittedRows` measures that optimism: each row scored at the epoch the other rows chose,
against all rows at the chosen epoch (:func:`cross_fitted_correction`).
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


class CrossFittedRows:
    """The validation rows scored at epochs chosen without them (leave one out), for a spread factor
    free of the early-stopping choice's optimism.

    :meth:`update`, after every epoch that early stopping considers, computes for each row the mean
    NLL of the *other* rows at this epoch and, where that is the lowest so far, keeps the row's
    predictive of this epoch; it also keeps the predictive of the epoch the whole part chose.
    :func:`cross_fitted_correction` is the ratio of the factors fitted on the two: how much wider
    (or narrower) the rows need to be when none of them took part in choosing its own epoch. Deterministic, and
    no more memory than two predictives of the rows. The final weights are still those the whole
    part chose.

    ``y``: the validation targets ``(n,)``; with fewer than 2 rows there is nothing to cross-fit and
    :meth:`rows` returns None.
    """

    def __init__(self, y: Tensor) -> None:
        self.y = y
        self.best = torch.full_like(y, math.inf, dtype=torch.float64)
        self.kept: GaussianMixture | None = None
        self.chosen_nll = math.inf
        self.chosen: GaussianMixture | None = None

    def update(self, dist: GaussianMixture, log_prob: Tensor) -> None:
        """Record one epoch: ``dist``, the predictive of every validation row ``(n, K)``, and
        ``log_prob``, their log densities ``(n,)``."""
        n = log_prob.shape[0]
        if n < 2:
            return
        log_prob = log_prob.to(torch.float64)
        whole = float(-log_prob.mean())
        if math.isfinite(whole) and whole < self.chosen_nll:  # the whole part's choice, as early stopping's
            self.chosen_nll, self.chosen = whole, dist.detach()
        finite = torch.isfinite(log_prob)
        lp = torch.where(finite, log_prob, torch.zeros_like(log_prob))
        others = -(lp.sum() - lp) / (n - 1)  # (n,) the other rows' mean NLL
        others_finite = (~finite).sum() - (~finite).to(torch.int64) == 0  # every other row finite
        better = others_finite & (others < self.best)
        self.best = torch.where(better, others, self.best)
        if self.kept is None:
            self.kept = dist.detach()
            return
        keep = better[:, None]
        self.kept = GaussianMixture(
            torch.where(keep, dist.logits, self.kept.logits),
            torch.where(keep, dist.loc, self.kept.loc),
            torch.where(keep, dist.scale, self.kept.scale),
            members=dist.members,
            validate_args=False,
        )

    def rows(self) -> tuple[GaussianMixture, GaussianMixture, Tensor] | None:
        """Every row's predictive at the epoch the other rows chose ``(n, K)``, every row's
        predictive at the epoch the whole part chose ``(n, K)``, and the targets ``(n,)``; None when
        some row's complement never had a finite NLL (or there are fewer than 2 rows)."""
        if self.kept is None or self.chosen is None or not bool(torch.isfinite(self.best).all()):
            return None
        return self.kept, self.chosen, self.y


def cross_fitted_correction(left_out: GaussianMixture, chosen: GaussianMixture, y: Tensor) -> float:
    """The factor fitted on rows scored at epochs chosen without them (``left_out``, from
    :meth:`CrossFittedRows.rows`) over the factor fitted on the same rows at the chosen epoch
    (``chosen``): what early stopping's optimism does to the spread. Multiplying the factor fitted
    on the final predictions by it keeps whatever else those predictions do differently (more Monte
    Carlo draws of a stochastic net); for a deterministic net the product is the factor of
    ``left_out`` itself."""
    return fit_spread(left_out, y) / fit_spread(chosen, y)
