"""Fitted scaling of inputs and targets, computed in float64 and kept as buffers of a module.

:func:`fit_scaling` computes the affine maps (mean and standard deviation, or median and a
robust spread) from float64 data; :class:`ScaledNet` wraps a net that works in standardized units
together with those maps as float64 buffers, so the module alone (saved with ``torch.save`` or its
``state_dict``) predicts in the user's units: ``ScaledNet(X) -> GaussianMixture`` over ``y``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models.layers import BayesianLinear

#: Targets further than this many robust standard deviations (1.4826 MAD) from the median are
#: reported by :func:`fit_scaling`'s warning.
OUTLIER_Z = 20.0
SCALINGS = ("standard", "robust")
_STATS = ("x_shift", "x_scale", "y_shift", "y_scale")
_BUFFERS = (*_STATS, "spread")


def _robust(t: Tensor) -> tuple[Tensor, Tensor]:
    """Median and ``IQR / 1.349`` along dim 0 (equal to the standard deviation for a Gaussian)."""
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=t.dtype, device=t.device), dim=0)
    return q[1], (q[2] - q[0]) / 1.3489795003921634


def _times_pow2(t: Tensor, e: Tensor) -> Tensor:
    """``t * 2**e`` in two exact steps (``2**e`` alone overflows or goes subnormal for ``|e| > 1022``)."""
    half = torch.div(e, 2, rounding_mode="floor")
    return torch.ldexp(torch.ldexp(t, half), e - half)


def _shift_scale(t: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """Shift and scale along dim 0 of a float64 tensor; a zero (or undefined) scale becomes 1.

    Computed on ``t / 2**e`` (``e``: the binary exponent of the largest ``|t|`` of each column), an
    exact rescaling, so that the squares of the standard deviation neither overflow (``|t| > 1e154``)
    nor underflow (``|t| < 1e-154``); for other data the result is the same to the last bit.
    """
    e = torch.frexp(t.abs().amax(0)).exponent
    u = _times_pow2(t, -e)
    if kind == "robust":
        shift, scale = _robust(u)
        std = u.std(0, unbiased=False)
        scale = torch.where(scale > 0, scale, std)  # a feature with few distinct values: fall back
    else:
        shift = u.mean(0)
        scale = u.std(0, unbiased=False) if t.shape[0] > 1 else torch.zeros_like(shift)
    shift, scale = _times_pow2(shift, e), _times_pow2(scale, e)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return shift, scale


def _check_stats(name: str, shift: Tensor, scale: Tensor) -> None:
    """Refuse a scaling of ``name`` (X or y) that is not finite with a positive scale."""
    if not bool(torch.isfinite(shift).all() & torch.isfinite(scale).all() & (scale > 0).all()):
        raise ValueError(
            f"{name} cannot be standardized in float64: its mean or spread is not finite and positive "
            f"(shift {shift.tolist()}, scale {scale.tolist()}); rescale {name}"
        )


def outlier_rows(y: Tensor, threshold: float = OUTLIER_Z) -> Tensor:
    """Indices of the targets ``y: (n,)`` further than ``threshold`` robust standard deviations
    (``1.4826 * MAD``) from the median; empty when the MAD is zero."""
    med = y.median()
    mad = 1.482602218505602 * (y - med).abs().median()
    if not mad > 0:
        return torch.zeros(0, dtype=torch.long, device=y.device)
    return ((y - med).abs() > threshold * mad).nonzero().flatten()


def fit_scaling(X: Tensor, y: Tensor, kind: str = "standard", *, warn: bool = True) -> dict[str, Tensor]:
    """Affine maps of ``X: (n, d)`` and ``y: (n,)`` (float64): ``{x_shift (d,), x_scale (d,),
    y_shift (), y_scale ()}``.

    ``kind``: ``"standard"`` (mean, standard deviation) or ``"robust"`` (median, IQR / 1.349).
    With ``warn``, targets far from the rest (see :func:`outlier_rows`) raise a ``UserWarning``
    naming their rows: a few such rows can dominate the fitted scale and the likelihood.
    """
    if kind not in SCALINGS:
        raise ValueError(f"target_scaling must be one of {SCALINGS}, got {kind!r}")
    if X.dtype != torch.float64 or y.dtype != torch.float64:
        raise TypeError("fit_scaling works on float64 tensors (the data are scaled before any rounding)")
    x_shift, x_scale = _shift_scale(X, kind)
    y_shift, y_scale = _shift_scale(y, kind)
    _check_stats("X", x_shift, x_scale)
    _check_stats("y", y_shift, y_scale)
    if warn:
        rows = outlier_rows(y)
        if rows.numel():
            shown = ", ".join(str(int(i)) for i in rows[:10]) + (", ..." if rows.numel() > 10 else "")
            warnings.warn(
                f"y has {rows.numel()} value(s) more than {OUTLIER_Z:g} robust standard deviations from its "
                f"median, at row(s) {shown}; they can dominate the fit. Check them, drop them, or pass "
                "target_scaling='robust'",
                UserWarning,
                stacklevel=3,
            )
    return {"x_shift": x_shift, "x_scale": x_scale, "y_shift": y_shift, "y_scale": y_scale}


def _widest(net: nn.Module) -> int:
    widths = [m.out_features for m in net.modules() if isinstance(m, (nn.Linear, BayesianLinear))]
    return max(widths, default=1)


class ScaledNet(nn.Module):
    """A net in standardized units together with the fitted scaling, as one module.

    ``forward(X: (n, d))`` standardizes ``X`` in float64, runs the net in its own dtype and returns
    the predictive :class:`GaussianMixture` over ``y`` in the user's units, in float64 (a float32
    net predicting targets with a large offset would round them), widened or narrowed about its
    mean by the fitted ``spread`` factor (see :mod:`~hidlr.uq.models.spread`; 1 until one is
    fitted). ``loss(X, y)`` is the net's loss on the standardized data. The four maps and the
    spread are float64 buffers and stay float64 when the module is moved to another dtype.
    ``snapshots`` (empty unless :meth:`set_snapshots` filled it): further nets of the same
    architecture, the same net's weights at other epochs; the predictive is then the equal mixture of
    ``net``'s and theirs (:meth:`GaussianMixture.concat`).

    Args:
        net: a module with ``loss(x, y)`` and ``forward(x) -> GaussianMixture`` in standardized
            units; stochastic nets also have ``predictive(x, samples)``.
        scaling: ``{x_shift (d,), x_scale (d,), y_shift (), y_scale ()}`` from :func:`fit_scaling`.
        chunk: bound on ``samples * rows * width`` activations held at once by a Monte Carlo prediction.
    """

    def __init__(self, net: nn.Module, scaling: dict[str, Tensor], chunk: int = 2**24) -> None:
        super().__init__()
        self.net = net
        for name in _STATS:
            self.register_buffer(name, scaling[name].detach().to(torch.float64).clone())
        self.register_buffer("spread", torch.ones((), dtype=torch.float64, device=self.x_shift.device))
        self.chunk = int(chunk)
        self.width = _widest(net)
        self.snapshots = nn.ModuleList()

    def set_snapshots(self, nets: Sequence[nn.Module]) -> None:
        """Predict with the equal mixture of ``net`` and ``nets`` (empty: ``net`` alone)."""
        self.snapshots = nn.ModuleList(nets)

    def _apply(self, fn: Any, recurse: bool = True) -> ScaledNet:
        kept = {name: getattr(self, name) for name in _BUFFERS}
        super()._apply(fn, recurse)
        for name, old in kept.items():  # follow the device, keep float64
            setattr(self, name, old.to(device=getattr(self, name).device, dtype=torch.float64))
        return self

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # modules saved before the spread existed: no spread (factor 1)
        state_dict.setdefault(prefix + "spread", torch.ones((), dtype=torch.float64))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_spread(self, factor: float) -> None:
        """Set the spread factor applied to every prediction (1: the net's own predictive)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"spread factor must be positive and finite, got {factor!r}")
        self.spread.fill_(float(factor))

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.net.parameters(), None)
        return torch.get_default_dtype() if p is None else p.dtype

    def standardize(self, X: Tensor) -> Tensor:
        """``X: (n, d)`` in user units -> the net's dtype and device, standardized in float64."""
        X = torch.as_tensor(X).to(device=self.x_shift.device, dtype=torch.float64)
        return ((X - self.x_shift) / self.x_scale).to(self.dtype)

    def standardize_y(self, y: Tensor) -> Tensor:
        """``y: (n,)`` in user units -> standardized, in the net's dtype."""
        y = torch.as_tensor(y).to(device=self.y_shift.device, dtype=torch.float64)
        return ((y - self.y_shift) / self.y_scale).to(self.dtype)

    def to_user_units(self, dist: GaussianMixture) -> GaussianMixture:
        """A mixture over standardized ``y`` -> the same law in user units, float64."""
        from hidlr.uq.models.spread import dilate

        d64 = GaussianMixture(
            dist.logits.double(), dist.loc.double(), dist.scale.double(), members=dist.members, validate_args=False
        )
        if float(self.spread) != 1.0:
            d64 = dilate(d64, self.spread)
        return d64.to_units(self.y_shift, self.y_scale)

    def loss(self, X: Tensor, y: Tensor) -> Tensor:
        """The net's training loss on the standardized batch ``X: (b, d)``, ``y: (b,)``."""
        return self.net.loss(self.standardize(X), self.standardize_y(y))

    def forward(self, X: Tensor, samples: int | None = None) -> GaussianMixture:
        """Predictive mixture over ``y`` (user units, float64) for ``X: (n, d)`` (user units).

        ``samples``: Monte Carlo passes of a stochastic net (default: the net's own); rows go
        through in chunks so that at most ``chunk`` activations are held at once.
        """
        xs = self.standardize(X)
        nets = [self.net, *self.snapshots]
        if samples is None or not hasattr(self.net, "predictive"):
            dists = [net(xs) for net in nets]
        else:
            rows = max(1, self.chunk // (samples * self.width))
            dists = [
                GaussianMixture.cat_rows(
                    [net.predictive(xs[i : i + rows], samples=samples) for i in range(0, xs.shape[0], rows)]
                )
                for net in nets
            ]
        return self.to_user_units(dists[0] if len(dists) == 1 else GaussianMixture.concat(dists))


def validation_scores(
    module: ScaledNet, X: Tensor, y: Tensor, samples: int | None, seed: int
) -> tuple[float, GaussianMixture, Tensor]:
    """The mean negative log predictive density of ``y: (n,)`` given ``X: (n, d)`` (user units; ``inf``
    when it is not finite), the predictive itself (``n`` rows, detached) and each row's log density
    ``(n,)`` (float64), with the Monte Carlo draws seeded by ``seed``."""
    from hidlr.uq.models.training import seeded

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), seeded(seed, module.x_shift.device):
            dist = module(X, samples=samples)
            log_prob = dist.log_prob(y.to(module.x_shift.device, torch.float64))
    finally:
        module.train(was_training)
    value = float(-log_prob.mean())
    return (value if math.isfinite(value) else math.inf), dist.detach(), log_prob
