"""Proper scores and calibration metrics for predictive Gaussian mixtures: pure functions.

Every function takes a :class:`~hidlr.uq.GaussianMixture` over ``n`` inputs and targets ``y`` of
shape ``(n,)`` or ``(n, 1)`` (NumPy array or tensor; cast to the mixture's dtype and device), checks
them, and returns a Python float averaged over the points unless stated otherwise.

- :func:`nll`, :func:`rmse`, :func:`mae` (of the predictive mean), :func:`crps` (closed form);
- :func:`coverage`, :func:`interval_width` of central intervals from the mixture's quantiles;
- :func:`pit`, :func:`calibration_error`, :func:`reliability` (PIT-based calibration);
- :func:`kl_to_truth` / :func:`kl_to_truth_estimate`: Monte Carlo KL from a known true density.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture, _check_level

__all__ = [
    "nll",
    "rmse",
    "mae",
    "crps",
    "crps_values",
    "coverage",
    "interval_width",
    "pit",
    "calibration_error",
    "reliability",
    "kl_to_truth",
    "kl_to_truth_estimate",
    "KLEstimate",
    "evaluate",
    "DEFAULT_LEVELS",
]

#: Quantile levels used by :func:`calibration_error` and :func:`reliability` by default.
DEFAULT_LEVELS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(1, 100))

_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_CRPS_CHUNK = 1 << 22  # elements of the (rows, K, K) work array per chunk


def _check_dist(dist: object) -> GaussianMixture:
    if not isinstance(dist, GaussianMixture):
        raise ValueError(f"dist must be a GaussianMixture, got {type(dist).__name__}")
    return dist


def _targets(dist: GaussianMixture, y: object, name: str = "y") -> Tensor:
    """``y`` as an ``(n,)`` tensor in ``dist``'s dtype and device, checked for length and finiteness."""
    _check_dist(dist)
    like = dist.loc
    if isinstance(y, Tensor):
        t = y.detach().to(dtype=like.dtype, device=like.device)
    else:
        try:
            t = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=like.dtype, device=like.device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array or tensor") from exc
    n = like.shape[0]
    if t.dim() == 2 and t.shape[1] == 1:
        t = t.reshape(-1)
    if t.dim() != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} values but the distribution covers {n} inputs")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def _levels(levels: Sequence[float] | np.ndarray | Tensor | None) -> list[float]:
    if levels is None:
        return list(DEFAULT_LEVELS)
    vals = np.asarray(levels.detach().cpu() if isinstance(levels, Tensor) else levels, dtype=np.float64)
    if vals.ndim != 1 or vals.size == 0:
        raise ValueError("levels must be a non-empty 1-D sequence of numbers in (0, 1)")
    return [_check_level(float(v)) for v in vals]


# ---------------------------------------------------------------------- point scores
def nll(dist: GaussianMixture, y: object) -> float:
    """Mean negative log predictive density, ``-mean_i log p(y_i | x_i)`` (nats)."""
    t = _targets(dist, y)
    with torch.no_grad():
        return float(-dist.log_prob(t).double().mean())


def rmse(dist: GaussianMixture, y: object) -> float:
    """Root mean squared error of the predictive mean."""
    t = _targets(dist, y)
    with torch.no_grad():
        return float((dist.mean.double() - t.double()).square().mean().sqrt())


def mae(dist: GaussianMixture, y: object) -> float:
    """Mean absolute error of the predictive mean."""
    t = _targets(dist, y)
    with torch.no_grad():
        return float((dist.mean.double() - t.double()).abs().mean())


def _abs_moment(m: Tensor, s: Tensor) -> Tensor:
    """``E|Z|`` for ``Z ~ N(m, s^2)``: ``2 s phi(m/s) + m (2 Phi(m/s) - 1)``."""
    z = m / s
    return 2.0 * s * _INV_SQRT_2PI * torch.exp(-0.5 * z.square()) + m * torch.erf(z / math.sqrt(2.0))


def crps_values(dist: GaussianMixture, y: object) -> Tensor:
    """Per-point CRPS ``(n,)`` (float64), in closed form for a Gaussian mixture.

    ``CRPS = sum_i w_i E|X_i - y| - 1/2 sum_ij w_i w_j E|X_i - X_j|`` with
    ``X_i - X_j ~ N(mu_i - mu_j, s_i^2 + s_j^2)``. Costs ``O(n K^2)``, computed in the mixture's
    dtype over chunks of rows (memory bounded whatever ``n``), the result returned in float64.
    """
    t = _targets(dist, y)
    with torch.no_grad():
        w = dist.weights.detach()
        mu = dist.loc.detach()
        sd = dist.scale.detach()
        n, k = mu.shape
        ii, jj = torch.triu_indices(k, k, offset=1, device=mu.device)  # pairs i < j
        rows = max(1, _CRPS_CHUNK // max(k, ii.numel()))
        out = torch.empty(n, dtype=torch.float64, device=mu.device)
        for a in range(0, n, rows):
            b = min(n, a + rows)
            wc, mc, sc = w[a:b], mu[a:b], sd[a:b]
            first = (wc * _abs_moment(t[a:b, None] - mc, sc)).sum(-1)
            # diagonal pairs: E|X_i - X_i'| = 2 s_i / sqrt(pi); off-diagonal pairs counted twice
            second = (wc.square() * sc).sum(-1) * (2.0 * _INV_SQRT_PI)
            if ii.numel():
                pair = _abs_moment(mc[:, ii] - mc[:, jj], torch.sqrt(sc[:, ii].square() + sc[:, jj].square()))
                second = second + 2.0 * (wc[:, ii] * wc[:, jj] * pair).sum(-1)
            out[a:b] = (first - 0.5 * second).double()
    return out


def crps(dist: GaussianMixture, y: object) -> float:
    """Mean continuous ranked probability score (closed form; lower is better, units of ``y``)."""
    return float(crps_values(dist, y).mean())


# ---------------------------------------------------------------------- intervals and calibration
def pit(dist: GaussianMixture, y: object) -> Tensor:
    """Probability integral transform ``F(y_i | x_i)``, shape ``(n,)``; uniform when calibrated."""
    t = _targets(dist, y)
    with torch.no_grad():
        return dist.cdf(t)


def coverage(dist: GaussianMixture, y: object, level: float) -> float:
    """Fraction of ``y`` inside the central ``level`` interval ``[Q((1-l)/2), Q((1+l)/2)]``.

    The mixture's CDF is continuous and strictly increasing, so ``Q(a) <= y <= Q(b)`` holds exactly
    when ``a <= F(y) <= b``; the PIT form is used (same answer, no root-finding).
    """
    level = _check_level(level)
    u = pit(dist, y).double()
    a, b = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    return float(((u >= a) & (u <= b)).double().mean())


def interval_width(dist: GaussianMixture, level: float) -> float:
    """Mean width of the central ``level`` intervals (from the mixture's quantiles), units of ``y``."""
    _check_dist(dist)
    lo, hi = dist.interval(_check_level(level))
    return float((hi - lo).double().mean())


def reliability(
    dist: GaussianMixture,
    y: object,
    levels: Sequence[float] | np.ndarray | Tensor | None = None,
    kind: str = "quantile",
) -> tuple[np.ndarray, np.ndarray]:
    """Data for a reliability plot: ``(expected, observed)``, two float64 arrays ``(L,)``.

    ``kind="quantile"``: observed = fraction of points with ``F(y) <= p`` for each level ``p``
    (the empirical CDF of the PIT values). ``kind="central"``: observed = coverage of the central
    ``p`` interval. A calibrated model gives ``observed == expected`` up to sampling noise.
    """
    ps = _levels(levels)
    u = pit(dist, y).double().cpu().numpy()
    p = np.asarray(ps, dtype=np.float64)
    if kind == "quantile":
        observed = (u[None, :] <= p[:, None]).mean(1)
    elif kind == "central":
        a, b = (1.0 - p) / 2.0, (1.0 + p) / 2.0
        observed = ((u[None, :] >= a[:, None]) & (u[None, :] <= b[:, None])).mean(1)
    else:
        raise ValueError(f"kind must be 'quantile' or 'central', got {kind!r}")
    return p, observed


def calibration_error(
    dist: GaussianMixture,
    y: object,
    levels: Sequence[float] | np.ndarray | Tensor | None = None,
    kind: str = "quantile",
) -> float:
    """PIT-based mean absolute calibration error: ``mean_p |observed(p) - p|`` over ``levels``.

    With the default 99 levels ``0.01 .. 0.99`` and ``kind="quantile"`` this is the discretised L1
    distance between the PIT values' empirical CDF and the uniform CDF (0 = perfectly calibrated,
    at most 0.5). ``kind="central"`` scores central-interval coverage instead (see
    :func:`reliability`).
    """
    expected, observed = reliability(dist, y, levels, kind)
    return float(np.abs(observed - expected).mean())


# ---------------------------------------------------------------------- KL to a known truth
@dataclass(frozen=True)
class KLEstimate:
    """Monte Carlo estimate of ``KL(p0 || p_hat)`` averaged over inputs, with its standard error."""

    value: float
    stderr: float
    n: int

    def __float__(self) -> float:
        return self.value


def kl_to_truth_estimate(dist: GaussianMixture, y: object, true_log_prob: object) -> KLEstimate:
    """``mean_i [log p0(y_i|x_i) - log p_hat(y_i|x_i)]`` with ``y_i ~ p0(.|x_i)``, and its std. error.

    ``y`` and ``true_log_prob`` are ``(n,)``: draws from the true conditional density at the
    inputs the mixture was predicted for, and that density's log at those draws. The estimate is
    unbiased for ``E_x KL(p0(.|x) || p_hat(.|x))`` when the ``x_i`` are drawn from the input law.
    """
    t = _targets(dist, y)
    lp0 = _targets(dist, true_log_prob, name="true_log_prob").double()
    with torch.no_grad():
        diff = lp0 - dist.log_prob(t).double()
    n = diff.shape[0]
    value = float(diff.mean())
    stderr = float(diff.std(unbiased=True) / math.sqrt(n)) if n > 1 else math.nan
    return KLEstimate(value=value, stderr=stderr, n=n)


def kl_to_truth(dist: GaussianMixture, y: object, true_log_prob: object) -> float:
    """Monte Carlo KL from the true conditional density; see :func:`kl_to_truth_estimate`."""
    return kl_to_truth_estimate(dist, y, true_log_prob).value


def evaluate(dist: GaussianMixture, y: object, levels: Sequence[float] = (0.5, 0.9, 0.95)) -> dict[str, float]:
    """All point scores plus coverage/width at ``levels``, as a flat ``{name: float}`` dict."""
    out = {
        "nll": nll(dist, y),
        "rmse": rmse(dist, y),
        "mae": mae(dist, y),
        "crps": crps(dist, y),
        "calibration_error": calibration_error(dist, y),
    }
    for level in _levels(levels):
        out[f"coverage@{level:g}"] = coverage(dist, y, level)
        out[f"width@{level:g}"] = interval_width(dist, level)
    return out
