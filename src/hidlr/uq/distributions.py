"""The predictive distribution of every model in :mod:`hidlr.uq`: a Gaussian mixture per input.

``GaussianMixture(logits, loc, scale)`` holds, for ``n`` inputs, ``K`` Gaussian components over a
scalar target ``y``: ``p(y | x_i) = sum_k w_ik N(y; loc_ik, scale_ik^2)`` with ``w = softmax(logits)``.
It follows :mod:`torch.distributions` conventions (``batch_shape == (n,)``, ``event_shape == ()``):
values of shape ``(n,)`` (or a column ``(n, 1)``) give ``(n,)``; values of shape ``(*S, n)`` give
``(*S, n)``. Densities go through log-sum-exp; quantiles come from a safeguarded Newton/bisection
root-finder run in float64 on a bracket that provably contains the root.

The components form ``members`` equal blocks (ensemble members, posterior weight samples, dropout
masks). Within that structure the law of total variance splits the predictive variance into an
*epistemic* part (spread of the members' means) and an *aleatoric* part (mean of their variances).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from hidlr.uq._quantile import mixture_quantile, ndtr

__all__ = ["GaussianMixture"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _as_tensor(value: object, like: Tensor, name: str) -> Tensor:
    """Convert ``value`` (number, NumPy array or tensor) to ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    try:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a number, array or tensor, got {type(value).__name__}") from exc


class GaussianMixture(Distribution):
    """Per-input mixture of ``K`` Gaussians over a scalar ``y``.

    Args:
        logits: ``(n, K)`` unnormalised log mixture weights.
        loc: ``(n, K)`` component means.
        scale: ``(n, K)`` component standard deviations, all ``> 0``.
        members: ``M``, the number of equal blocks of ``K / M`` consecutive components that make up
            the mixture (ensemble members, posterior samples); used by
            :attr:`epistemic_variance` / :attr:`aleatoric_variance`.
        validate_args: shapes are always checked; the value checks (finite parameters, positive
            scales, finite ``y``), which synchronise with the device, are skipped when ``False``.

    ``batch_shape == (n,)`` and ``event_shape == ()``. The object is immutable: every transform
    returns a new mixture. Gradients flow from ``log_prob``/``cdf``/``mean``/``variance`` to the
    parameters; ``sample`` and ``icdf`` are not differentiable.
    """

    arg_constraints = {
        "logits": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    has_rsample = False

    def __init__(
        self,
        logits: Tensor,
        loc: Tensor,
        scale: Tensor,
        members: int = 1,
        validate_args: bool | None = None,
    ) -> None:
        for name, t in (("logits", logits), ("loc", loc), ("scale", scale)):
            if not isinstance(t, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor of shape (n, K), got {type(t).__name__}")
            if t.dim() != 2:
                raise ValueError(f"{name} must have shape (n, K), got shape {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if not (logits.shape == loc.shape == scale.shape):
            raise ValueError(
                "logits, loc and scale must have the same shape (n, K), got "
                f"{tuple(logits.shape)}, {tuple(loc.shape)}, {tuple(scale.shape)}"
            )
        n, k = loc.shape
        if n == 0:
            raise ValueError("a GaussianMixture needs at least one input (n >= 1), got n = 0")
        if k == 0:
            raise ValueError("a GaussianMixture needs at least one component (K >= 1), got K = 0")
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ValueError(f"members must be a positive int, got {members!r}")
        if k % members != 0:
            raise ValueError(f"members = {members} must divide the number of components K = {k}")
        if not (logits.dtype == loc.dtype == scale.dtype):
            raise ValueError(
                f"logits, loc and scale must share a dtype, got {logits.dtype}, {loc.dtype}, {scale.dtype}"
            )
        if validate_args is not False:
            for name, t in (("logits", logits), ("loc", loc), ("scale", scale)):
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{name} contains NaN or inf")
            if not bool((scale > 0).all()):
                raise ValueError("scale must be > 0 everywhere")
        self._logits = logits
        self._loc = loc
        self._scale = scale
        self._members = members
        self._check_values = validate_args is not False
        # The checks above replace torch's constraint validation.
        super().__init__(batch_shape=torch.Size([n]), event_shape=torch.Size(), validate_args=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_normal(cls, loc: Tensor, scale: Tensor, validate_args: bool | None = None) -> GaussianMixture:
        """One Gaussian per input: ``loc``, ``scale`` of shape ``(n,)`` (or ``(n, 1)``)."""
        if not isinstance(loc, Tensor) or not isinstance(scale, Tensor):
            raise ValueError("loc and scale must be tensors of shape (n,)")
        loc = loc.reshape(-1, 1) if loc.dim() <= 1 else loc
        scale = scale.reshape(-1, 1) if scale.dim() <= 1 else scale
        if loc.shape != scale.shape or loc.shape[-1] != 1:
            raise ValueError(f"loc and scale must both have shape (n,), got {tuple(loc.shape)}, {tuple(scale.shape)}")
        return cls(torch.zeros_like(loc), loc, scale, validate_args=validate_args)

    @staticmethod
    def concat(mixtures: Sequence[GaussianMixture]) -> GaussianMixture:
        """Equal-weight mixture of ``L`` mixtures over the same ``n`` inputs.

        Each mixture's weights are divided by ``L``; members add up. Used for ensembles, posterior
        weight samples and MC-dropout passes. All mixtures must have the same number of components
        per member, so that the result's members are again equal blocks.
        """
        mixtures = list(mixtures)
        if not mixtures:
            raise ValueError("concat needs at least one GaussianMixture")
        for m in mixtures:
            if not isinstance(m, GaussianMixture):
                raise ValueError(f"concat takes GaussianMixture objects, got {type(m).__name__}")
        first = mixtures[0]
        n = first.loc.shape[0]
        block = first.loc.shape[1] // first.members
        for m in mixtures[1:]:
            if m.loc.shape[0] != n:
                raise ValueError(f"concat needs mixtures over the same inputs: n = {n} vs {m.loc.shape[0]}")
            if m.loc.shape[1] // m.members != block:
                raise ValueError(
                    "concat needs the same number of components per member in every mixture "
                    f"({block} vs {m.loc.shape[1] // m.members})"
                )
        log_l = math.log(len(mixtures))
        like = first.loc
        logits = torch.cat([torch.log_softmax(m.logits.to(like), dim=-1) - log_l for m in mixtures], dim=-1)
        loc = torch.cat([m.loc.to(like) for m in mixtures], dim=-1)
        scale = torch.cat([m.scale.to(like) for m in mixtures], dim=-1)
        members = sum(m.members for m in mixtures)
        return GaussianMixture(logits, loc, scale, members=members, validate_args=False)

    @staticmethod
    def cat_rows(parts: Sequence[GaussianMixture]) -> GaussianMixture:
        """One mixture over the inputs of all ``parts`` in order (rows ``(n_1 + n_2 + ..., k)``), e.g.
        a prediction made in chunks of rows. The parts must have the same members and components."""
        parts = list(parts)
        if not parts:
            raise ValueError("cat_rows needs at least one GaussianMixture")
        first = parts[0]
        for m in parts:
            if not isinstance(m, GaussianMixture):
                raise ValueError(f"cat_rows takes GaussianMixture objects, got {type(m).__name__}")
            if m.loc.shape[1] != first.loc.shape[1] or m.members != first.members:
                raise ValueError(
                    f"cat_rows needs the same components and members in every part: {first.loc.shape[1]} "
                    f"components in {first.members} members vs {m.loc.shape[1]} in {m.members}"
                )
        if len(parts) == 1:
            return first
        return GaussianMixture(
            torch.cat([m.logits for m in parts]),
            torch.cat([m.loc for m in parts]),
            torch.cat([m.scale for m in parts]),
            members=first.members,
            validate_args=False,
        )

    def to_units(self, shift: float | Tensor, scale: float | Tensor) -> GaussianMixture:
        """The law of ``shift + scale * y``; ``shift``, ``scale`` scalars or ``(n,)``, ``scale > 0``.

        Undoes target z-scoring: ``dist.to_units(y_mean, y_std)``.
        """
        shift_t = _as_tensor(shift, self._loc, "shift")
        scale_t = _as_tensor(scale, self._loc, "scale")
        n = self._loc.shape[0]
        for name, t in (("shift", shift_t), ("scale", scale_t)):
            if t.dim() > 1 or (t.dim() == 1 and t.shape[0] not in (1, n)):
                raise ValueError(f"{name} must be a scalar or have shape ({n},), got {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or inf")
        if not bool((scale_t > 0).all()):
            raise ValueError("scale must be > 0")
        shift_c = shift_t.reshape(-1, 1) if shift_t.dim() == 1 else shift_t
        scale_c = scale_t.reshape(-1, 1) if scale_t.dim() == 1 else scale_t
        return GaussianMixture(
            self._logits,
            shift_c + scale_c * self._loc,
            scale_c * self._scale,
            members=self._members,
            validate_args=False,
        )

    # ------------------------------------------------------------------ parameters
    @property
    def logits(self) -> Tensor:
        """``(n, K)`` unnormalised log weights."""
        return self._logits

    @property
    def loc(self) -> Tensor:
        """``(n, K)`` component means."""
        return self._loc

    @property
    def scale(self) -> Tensor:
        """``(n, K)`` component standard deviations."""
        return self._scale

    @property
    def members(self) -> int:
        """Number of equal blocks of components (ensemble members / posterior samples)."""
        return self._members

    @property
    def num_components(self) -> int:
        """``K``."""
        return self._loc.shape[1]

    @property
    def weights(self) -> Tensor:
        """``(n, K)`` mixture weights, ``softmax(logits)``."""
        return torch.softmax(self._logits, dim=-1)

    @property
    def log_weights(self) -> Tensor:
        """``(n, K)`` log mixture weights."""
        return torch.log_softmax(self._logits, dim=-1)

    def __repr__(self) -> str:
        n, k = self._loc.shape
        return f"GaussianMixture(n={n}, K={k}, members={self._members}, dtype={self._loc.dtype})"

    def __getitem__(self, index: int | slice | Tensor) -> GaussianMixture:
        """The mixtures of the selected inputs (rows), as a new ``GaussianMixture``."""
        if isinstance(index, int):
            n = self._loc.shape[0]
            if not -n <= index < n:
                raise IndexError(f"index {index} is out of range for a mixture over {n} inputs")
            index = slice(index, index + 1 if index != -1 else None)
        return GaussianMixture(
            self._logits[index], self._loc[index], self._scale[index], members=self._members, validate_args=False
        )

    def detach(self) -> GaussianMixture:
        """The same mixture cut from the autograd graph."""
        return GaussianMixture(
            self._logits.detach(), self._loc.detach(), self._scale.detach(), members=self._members, validate_args=False
        )

    # ------------------------------------------------------------------ moments
    @property
    def mean(self) -> Tensor:
        """``(n,)`` predictive mean."""
        return (self.weights * self._loc).sum(-1)

    @property
    def variance(self) -> Tensor:
        """``(n,)`` predictive variance, ``sum_k w_k (scale_k^2 + (loc_k - mean)^2)``."""
        w = self.weights
        mean = (w * self._loc).sum(-1, keepdim=True)
        return (w * (self._scale.square() + (self._loc - mean).square())).sum(-1)

    def _member_moments(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per-member weight, mean and variance, each ``(n, M)``."""
        n, k = self._loc.shape
        m = self._members
        w = self.weights.reshape(n, m, k // m)
        loc = self._loc.reshape(n, m, k // m)
        var = self._scale.reshape(n, m, k // m).square()
        wm = w.sum(-1)
        wn = w / wm.unsqueeze(-1).clamp_min(torch.finfo(w.dtype).tiny)
        mu = (wn * loc).sum(-1)
        v = (wn * (var + (loc - mu.unsqueeze(-1)).square())).sum(-1)
        return wm, mu, v

    @property
    def epistemic_variance(self) -> Tensor:
        """``(n,)`` weighted variance over members of the members' means (0 when ``members == 1``).

        With equal member weights this is the population variance (``ddof = 0``) of the member means,
        so that ``epistemic_variance + aleatoric_variance == variance``.
        """
        wm, mu, _ = self._member_moments()
        mean = (wm * mu).sum(-1, keepdim=True)
        return (wm * (mu - mean).square()).sum(-1)

    @property
    def aleatoric_variance(self) -> Tensor:
        """``(n,)`` weighted mean over members of each member's own variance."""
        wm, _, v = self._member_moments()
        return (wm * v).sum(-1)

    # ------------------------------------------------------------------ densities
    def _prepare(self, value: object, name: str = "value", columns: bool = False) -> Tensor:
        """Cast ``value`` and bring it to a shape broadcastable with ``(n,)``.

        A value of shape exactly ``(n, 1)`` is read as a column of targets, one per input, and
        flattened to ``(n,)``; pass ``(S, n)`` (e.g. expanded) for ``S = n`` levels per input. Another
        column ``(S, 1)`` is refused (a column of targets of the wrong length), unless ``columns``:
        then it means ``S`` values for every input (quantile levels).
        """
        v = _as_tensor(value, self._loc, name)
        n = self._loc.shape[0]
        if v.dim() == 2 and v.shape == (n, 1) and n != 1:
            v = v.reshape(n)
        if v.dim() == 2 and v.shape[1] == 1 and n != 1 and not columns:
            raise ValueError(
                f"{name} of shape {tuple(v.shape)} is a column of {v.shape[0]} values for a mixture over {n} inputs; "
                f"pass (n,) or (n, 1) with n = {n} (or expand to ({v.shape[0]}, {n}) for {v.shape[0]} values per input)"
            )
        if v.dim() >= 1 and v.shape[-1] not in (1, n):
            raise ValueError(
                f"{name} of shape {tuple(v.shape)} does not broadcast with the mixture's {n} inputs; "
                f"expected (n,), (n, 1) or (*S, n) with n = {n}"
            )
        if self._check_values and not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} contains NaN or inf")
        return v

    def _standardise(self, v: Tensor) -> Tensor:
        return (v.unsqueeze(-1) - self._loc) / self._scale

    def log_prob(self, value: object) -> Tensor:
        """Log-density at ``value`` ``(n,)``, ``(n, 1)`` or ``(*S, n)``; returns ``(n,)`` or ``(*S, n)``."""
        v = self._prepare(value)
        z = self._standardise(v)
        comp = -0.5 * z.square() - self._scale.log() - _LOG_SQRT_2PI
        return torch.logsumexp(self.log_weights + comp, dim=-1)

    def cdf(self, value: object) -> Tensor:
        """CDF at ``value``; shapes as in :meth:`log_prob`."""
        v = self._prepare(value)
        return (self.weights * ndtr(self._standardise(v))).sum(-1)

    def icdf(self, value: object) -> Tensor:
        """Quantile function; ``value`` in ``[0, 1]``, scalar, ``(n,)``, ``(n, 1)``, ``(*S, n)`` or ``(S, 1)``
        (``S`` levels for every input).

        Returns ``(n,)`` or ``(*S, n)``; 0 and 1 map to -inf and +inf. Solved in float64 until the
        Newton correction falls below ``1e-13 max(|x|, 1)``; levels above 1/2 are solved on the
        survival function, so both tails keep their relative accuracy.
        """
        q = self._prepare(value, "q", columns=True)
        if not bool(((q >= 0) & (q <= 1)).all()):  # also catches NaN
            raise ValueError("quantile levels must lie in [0, 1] (and not be NaN)")
        with torch.no_grad():
            out = mixture_quantile(
                self.log_weights.detach().double(),
                self._loc.detach().double(),
                self._scale.detach().double(),
                q.detach().double(),
            )
        return out.to(self._loc.dtype)

    def quantile(self, value: object) -> Tensor:
        """Alias of :meth:`icdf`."""
        return self.icdf(value)

    def interval(self, level: float) -> tuple[Tensor, Tensor]:
        """Central interval ``(lo, hi)``, each ``(n,)``, holding probability ``level`` in ``(0, 1)``."""
        level = _check_level(level)
        n = self._loc.shape[0]
        q = torch.tensor(
            [[(1.0 - level) / 2.0], [(1.0 + level) / 2.0]], dtype=self._loc.dtype, device=self._loc.device
        ).expand(2, n)  # explicit (2, n): no column ambiguity
        lo_hi = self.icdf(q)
        return lo_hi[0], lo_hi[1]

    # ------------------------------------------------------------------ sampling
    def sample(
        self, sample_shape: torch.Size | Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw samples of shape ``(*sample_shape, n)``; ``generator`` makes them reproducible."""
        shape = torch.Size(sample_shape)
        count = max(int(shape.numel()), 1)
        n = self._loc.shape[0]
        if shape.numel() == 0:  # e.g. (0,): no draws
            return self._loc.new_empty((*shape, n)).detach()
        with torch.no_grad():
            idx = torch.multinomial(self.weights.detach(), count, replacement=True, generator=generator)
            loc = torch.gather(self._loc.detach(), 1, idx)  # (n, count)
            scale = torch.gather(self._scale.detach(), 1, idx)
            eps = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device, generator=generator)
            draws = (loc + scale * eps).transpose(0, 1)  # (count, n)
        return draws.reshape(*shape, n)


def _check_level(level: float) -> float:
    """Validate a central-interval level in ``(0, 1)``: a real number (Python or NumPy, a 0-d array)
    or a one-element tensor."""
    if isinstance(level, np.ndarray) and level.ndim == 0:
        level = level[()]
    if isinstance(level, (bool, np.bool_)) or (
        not isinstance(level, (int, float, np.integer, np.floating))
        and not (isinstance(level, Tensor) and level.numel() == 1)
    ):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    level = float(level)
    if not (0.0 < level < 1.0):  # also rejects NaN
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return level
