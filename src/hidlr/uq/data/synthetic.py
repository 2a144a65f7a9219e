"""Synthetic 1-D regression tasks whose true conditional density ``p0(y | x)`` is known exactly.

Every task draws ``x`` from its input law and ``y`` from ``p0(. | x)``, and evaluates
``log p0(y | x)`` and the conditional CDF for any ``x`` in its input range; where the truth is
itself a Gaussian mixture, ``true_distribution(x)`` returns it (an oracle prediction to score
against). Inputs are ``(n, 1)`` float64 tensors, targets ``(n,)``; every draw is reproducible
from an integer ``seed``.

- ``bimodal``: ``y = s sin(3x) + eps``, ``s = +-1`` with probability 1/2,
  ``eps ~ N(0, (0.05 + 0.1|x|)^2)``, ``x ~ U(-1, 1)``.
- ``heteroscedastic``: ``y = sin(2.5x) + x/2 + (0.05 + 0.4 x^2) eps``, ``x ~ U(-1, 1)``.
- ``bishop``: Bishop's inverse problem: ``t ~ U(0, 1)``, ``x = t + 0.3 sin(2 pi t) + U(-0.1, 0.1)``,
  predict ``y = t`` from ``x``. Given ``x``, ``t`` is uniform on ``{t in [0, 1]: |x - g(t)| <= 0.1}``
  (up to three intervals, found by root-finding on the monotone pieces of ``g``): the density is
  piecewise constant with jumps, and ``log p0 = -inf`` outside that set (a Gaussian-mixture
  prediction still has a finite KL from it, since the truth's own draws never fall outside).
- ``gap``: small-n data in two input clusters ``U(-1, -0.5)`` and ``U(0.5, 1)`` with
  ``y = x + 0.5 sin(4x) + 0.1 eps``; the gap in between shows whether epistemic uncertainty grows
  away from the data. Its ``log_prob`` holds everywhere, the gap included.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch
from scipy import special
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture

__all__ = [
    "SyntheticTask",
    "Bimodal",
    "Heteroscedastic",
    "BishopInverse",
    "Gap",
    "TASKS",
    "get_task",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _norm_logpdf(y: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((y - mu) / sd) ** 2 - np.log(sd) - _LOG_SQRT_2PI


class SyntheticTask(ABC):
    """A 1-D regression task with a known conditional density.

    Subclasses define ``name``, ``x_range`` (the input law's support, for plotting grids),
    ``default_n`` and the NumPy kernels ``_draw_x``, ``_draw_y``, ``_log_prob``, ``_cdf``.
    """

    name: str = ""
    x_range: tuple[float, float] = (-1.0, 1.0)
    default_n: int = 1000

    # ---------------------------------------------------------------- public API
    def sample_x(self, n: int, seed: int = 0) -> Tensor:
        """``(n, 1)`` float64 inputs from the task's input law."""
        n = self._check_n(n)
        return torch.from_numpy(self._draw_x(np.random.default_rng(seed), n)).reshape(n, 1)

    def sample_y(self, x: object, seed: int = 0) -> Tensor:
        """``(n,)`` float64 targets drawn from ``p0(. | x)`` for ``x`` of shape ``(n, 1)`` or ``(n,)``."""
        xs = self._check_x(x)
        return torch.from_numpy(self._draw_y(np.random.default_rng(seed), xs))

    def sample(self, n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``(x, y)``: ``n`` (default ``default_n``) joint draws, ``x`` ``(n, 1)``, ``y`` ``(n,)``."""
        n = self._check_n(self.default_n if n is None else n)
        sx, sy = np.random.SeedSequence(seed).spawn(2)
        x = self._draw_x(np.random.default_rng(sx), n)
        y = self._draw_y(np.random.default_rng(sy), x)
        return torch.from_numpy(x).reshape(n, 1), torch.from_numpy(y)

    def log_prob(self, x: object, y: object) -> Tensor:
        """Exact ``log p0(y_i | x_i)``, shape ``(n,)`` float64."""
        xs, ys = self._check_xy(x, y)
        return torch.from_numpy(self._log_prob(xs, ys))

    def cdf(self, x: object, y: object) -> Tensor:
        """Exact conditional CDF ``P(Y <= y_i | x_i)``, shape ``(n,)`` float64."""
        xs, ys = self._check_xy(x, y)
        return torch.from_numpy(self._cdf(xs, ys))

    def true_distribution(self, x: object) -> GaussianMixture:
        """The true ``p0(. | x)`` as a float64 :class:`GaussianMixture` (tasks whose truth is one)."""
        xs = self._check_x(x)
        w, m, s = self._true_mixture(xs)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
        return GaussianMixture(t(np.log(w)), t(m), t(s))

    def _true_mixture(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError(f"the {self.name!r} task's true density is not a Gaussian mixture")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ---------------------------------------------------------------- kernels (NumPy, float64)
    @abstractmethod
    def _draw_x(self, rng: np.random.Generator, n: int) -> np.ndarray: ...

    @abstractmethod
    def _draw_y(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _log_prob(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _cdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    # ---------------------------------------------------------------- checks
    @staticmethod
    def _check_n(n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        return int(n)

    def _check_x(self, x: object) -> np.ndarray:
        a = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 1:
            raise ValueError(f"x must have shape (n, 1) or (n,), got {a.shape}")
        if a.size == 0:
            raise ValueError("x is empty")
        if not np.all(np.isfinite(a)):
            raise ValueError("x contains NaN or inf")
        return a

    def _check_xy(self, x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        xs = self._check_x(x)
        ys = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.float64)
        if ys.ndim == 2 and ys.shape[1] == 1:
            ys = ys[:, 0]
        if ys.ndim != 1:
            raise ValueError(f"y must have shape (n,) or (n, 1), got {ys.shape}")
        if ys.shape[0] != xs.shape[0]:
            raise ValueError(f"x and y have different lengths: {xs.shape[0]} vs {ys.shape[0]}")
        if not np.all(np.isfinite(ys)):
            raise ValueError("y contains NaN or inf")
        return xs, ys


class Bimodal(SyntheticTask):
    """``y = s sin(3x) + N(0, (0.05 + 0.1|x|)^2)``, ``s = +-1`` equally likely, ``x ~ U(-1, 1)``."""

    name = "bimodal"

    def _sd(self, x: np.ndarray) -> np.ndarray:
        return 0.05 + 0.1 * np.abs(x)

    def _draw_x(self, rng, n):
        return rng.uniform(-1.0, 1.0, size=n)

    def _draw_y(self, rng, x):
        s = np.where(rng.random(x.shape[0]) < 0.5, -1.0, 1.0)
        return s * np.sin(3.0 * x) + self._sd(x) * rng.standard_normal(x.shape[0])

    def _log_prob(self, x, y):
        m, sd = np.sin(3.0 * x), self._sd(x)
        return np.logaddexp(_norm_logpdf(y, m, sd), _norm_logpdf(y, -m, sd)) - math.log(2.0)

    def _cdf(self, x, y):
        m, sd = np.sin(3.0 * x), self._sd(x)
        return 0.5 * (special.ndtr((y - m) / sd) + special.ndtr((y + m) / sd))

    def _true_mixture(self, x):
        m, sd = np.sin(3.0 * x), self._sd(x)
        return np.full((x.shape[0], 2), 0.5), np.stack([m, -m], 1), np.stack([sd, sd], 1)


class Heteroscedastic(SyntheticTask):
    """``y = sin(2.5x) + x/2 + (0.05 + 0.4 x^2) eps``, ``eps ~ N(0, 1)``, ``x ~ U(-1, 1)``."""

    name = "heteroscedastic"

    @staticmethod
    def mean_fn(x: np.ndarray) -> np.ndarray:
        return np.sin(2.5 * x) + 0.5 * x

    @staticmethod
    def sd_fn(x: np.ndarray) -> np.ndarray:
        return 0.05 + 0.4 * x**2

    def _draw_x(self, rng, n):
        return rng.uniform(-1.0, 1.0, size=n)

    def _draw_y(self, rng, x):
        return self.mean_fn(x) + self.sd_fn(x) * rng.standard_normal(x.shape[0])

    def _log_prob(self, x, y):
        return _norm_logpdf(y, self.mean_fn(x), self.sd_fn(x))

    def _cdf(self, x, y):
        return special.ndtr((y - self.mean_fn(x)) / self.sd_fn(x))

    def _true_mixture(self, x):
        return np.ones((x.shape[0], 1)), self.mean_fn(x)[:, None], self.sd_fn(x)[:, None]


class Gap(SyntheticTask):
    """Two input clusters ``U(-1, -0.5)``, ``U(0.5, 1)``; ``y = x + 0.5 sin(4x) + 0.1 eps``; small n."""

    name = "gap"
    default_n = 40
    noise = 0.1
    clusters: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, -0.5), (0.5, 1.0))
    x_range = (-1.5, 1.5)

    @staticmethod
    def mean_fn(x: np.ndarray) -> np.ndarray:
        return x + 0.5 * np.sin(4.0 * x)

    def _draw_x(self, rng, n):
        (a0, b0), (a1, b1) = self.clusters
        right = rng.random(n) < 0.5
        u = rng.random(n)
        return np.where(right, a1 + (b1 - a1) * u, a0 + (b0 - a0) * u)

    def _draw_y(self, rng, x):
        return self.mean_fn(x) + self.noise * rng.standard_normal(x.shape[0])

    def _log_prob(self, x, y):
        return _norm_logpdf(y, self.mean_fn(x), np.full_like(x, self.noise))

    def _cdf(self, x, y):
        return special.ndtr((y - self.mean_fn(x)) / self.noise)

    def _true_mixture(self, x):
        return np.ones((x.shape[0], 1)), self.mean_fn(x)[:, None], np.full((x.shape[0], 1), self.noise)


class BishopInverse(SyntheticTask):
    """Bishop (1994): predict ``t`` from ``x = t + 0.3 sin(2 pi t) + U(-0.1, 0.1)``, ``t ~ U(0, 1)``.

    ``p0(t | x) = 1{t in A(x)} / |A(x)|`` with ``A(x) = {t in [0, 1]: |x - g(t)| <= 0.1}``, found
    exactly on the three monotone pieces of ``g(t) = t + 0.3 sin(2 pi t)`` by bisection.
    """

    name = "bishop"
    x_range = (-0.1, 1.1)
    amp = 0.3
    half_width = 0.1

    def __init__(self) -> None:
        # g'(t) = 1 + 0.6 pi cos(2 pi t) = 0 at t1 and t2 = 1 - t1
        t1 = math.acos(-1.0 / (2.0 * math.pi * self.amp)) / (2.0 * math.pi)
        self._pieces = ((0.0, t1, True), (t1, 1.0 - t1, False), (1.0 - t1, 1.0, True))

    def g(self, t: np.ndarray) -> np.ndarray:
        """The forward map ``t + 0.3 sin(2 pi t)``."""
        return t + self.amp * np.sin(2.0 * np.pi * t)

    def _inverse(self, level: np.ndarray, a: float, b: float, increasing: bool) -> np.ndarray:
        """``t`` in ``[a, b]`` with ``g(t) = level`` (level clipped to ``g([a, b])``), by bisection."""
        lo = np.full_like(level, a)
        hi = np.full_like(level, b)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = self.g(mid) < level
            go_right = below if increasing else ~below
            lo = np.where(go_right, mid, lo)
            hi = np.where(go_right, hi, mid)
        return 0.5 * (lo + hi)

    def intervals(self, x: np.ndarray) -> np.ndarray:
        """``(n, 3, 2)``: per monotone piece, the interval of ``t`` with ``|x - g(t)| <= 0.1``.

        Empty pieces have equal endpoints.
        """
        out = np.empty((x.shape[0], 3, 2))
        for p, (a, b, inc) in enumerate(self._pieces):
            ga, gb = self.g(np.array(a)), self.g(np.array(b))
            gmin, gmax = min(ga, gb), max(ga, gb)
            lo_level = np.clip(x - self.half_width, gmin, gmax)
            hi_level = np.clip(x + self.half_width, gmin, gmax)
            t_lo = self._inverse(lo_level, a, b, inc)
            t_hi = self._inverse(hi_level, a, b, inc)
            left, right = (t_lo, t_hi) if inc else (t_hi, t_lo)
            empty = (x - self.half_width > gmax) | (x + self.half_width < gmin)
            out[:, p, 0] = np.where(empty, a, left)
            out[:, p, 1] = np.where(empty, a, np.maximum(left, right))
        return out

    def support_measure(self, x: object) -> Tensor:
        """``|A(x)|``, the length of the set of ``t`` compatible with ``x``, shape ``(n,)``."""
        xs = self._check_x(x)
        iv = self.intervals(xs)
        return torch.from_numpy((iv[..., 1] - iv[..., 0]).sum(-1))

    def _measure(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        iv = self.intervals(x)
        m = (iv[..., 1] - iv[..., 0]).sum(-1)
        lo, hi = self.x_range
        if np.any((x <= lo) | (x >= hi)) or np.any(m <= 0):
            raise ValueError(f"x must lie inside the task's input range {self.x_range} (open interval)")
        return iv, m

    def _draw_x(self, rng, n):
        t = rng.random(n)
        return self.g(t) + rng.uniform(-self.half_width, self.half_width, size=n)

    def sample(self, n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Joint draws by the forward process (``t`` first, then ``x``)."""
        n = self._check_n(self.default_n if n is None else n)
        rng = np.random.default_rng(seed)
        t = rng.random(n)
        x = self.g(t) + rng.uniform(-self.half_width, self.half_width, size=n)
        return torch.from_numpy(x).reshape(n, 1), torch.from_numpy(t)

    def _draw_y(self, rng, x):
        iv, m = self._measure(x)
        # a uniform point of the union: walk the pieces' lengths
        u = rng.random(x.shape[0]) * m
        lengths = iv[..., 1] - iv[..., 0]
        cum = np.cumsum(lengths, axis=-1)
        piece = np.minimum((u[:, None] >= cum).sum(-1), 2)
        start = np.take_along_axis(iv[..., 0], piece[:, None], 1)[:, 0]
        before = np.where(piece > 0, np.take_along_axis(cum, np.maximum(piece - 1, 0)[:, None], 1)[:, 0], 0.0)
        return start + (u - before)

    def _log_prob(self, x, y):
        iv, m = self._measure(x)
        inside = ((y[:, None] >= iv[..., 0]) & (y[:, None] <= iv[..., 1])).any(-1)
        return np.where(inside, -np.log(m), -np.inf)

    def _cdf(self, x, y):
        iv, m = self._measure(x)
        covered = np.clip(y[:, None], iv[..., 0], iv[..., 1]) - iv[..., 0]
        return covered.sum(-1) / m


#: Task name -> class.
TASKS: dict[str, type[SyntheticTask]] = {cls.name: cls for cls in (Bimodal, Heteroscedastic, BishopInverse, Gap)}


def get_task(name: str) -> SyntheticTask:
    """A new instance of the task called ``name`` (one of :data:`TASKS`)."""
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}") from None
