"""NUTS reference posterior of a one-hidden-layer Bayesian neural network (pyro-ppl's ``MCMC``).

The model is the BNN family of the gap experiment, written out as a plain log density so that
NUTS targets the posterior itself (no mean-field or other variational family):

- inputs and targets z-scored on the training sample (mean, population std), as the estimators do;
- ``f_w(x) = w2 . act(W1 x + b1) + b2`` with ``hidden`` units; every weight and bias has an
  independent ``N(0, prior_sigma^2)`` prior (the variational BNN's prior);
- one noise scale for all inputs, ``sigma ~ HalfNormal(noise_prior)``, sampled with the weights
  (on ``log sigma``, Jacobian included);
- ``y_i ~ N(f_w(x_i), sigma^2)``.

Chains run one after the other (each its own seed and an initial point drawn from the prior), so
the result does not depend on the number of cores. Diagnostics are pyro's split R-hat and
effective sample size over chains, for the noise scale, for the function values ``f_w(x)`` on a
grid, and for the raw weights (whose posterior has permutation and sign symmetries, so their
R-hat is expected to be poor even when the predictive has converged: the function values are the
quantity to judge convergence by).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hidlr.uq.distributions import GaussianMixture

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


@dataclass(frozen=True)
class NUTSSettings:
    """Model and sampler settings of :func:`nuts_posterior`.

    hidden: hidden units; activation: ``"relu"`` or ``"tanh"``; prior_sigma: prior std of every
    weight and bias; noise_prior: scale of the half-normal prior on the noise std (standardized
    units); chains, warmup, samples: per chain; max_tree_depth, target_accept, full_mass (a dense
    mass matrix adapted in warmup instead of a diagonal one): NUTS options.
    """

    hidden: int = 50
    activation: str = "relu"
    prior_sigma: float = 1.0
    noise_prior: float = 1.0
    chains: int = 4
    warmup: int = 400
    samples: int = 200
    max_tree_depth: int = 8
    target_accept: float = 0.8
    full_mass: bool = False

    def __post_init__(self) -> None:
        for name in ("hidden", "chains", "warmup", "samples", "max_tree_depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.chains < 2:
            raise ValueError(f"chains must be at least 2 (R-hat needs several chains), got {self.chains}")
        for name in ("prior_sigma", "noise_prior"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if not (isinstance(self.target_accept, float) and 0.0 < self.target_accept < 1.0):
            raise ValueError(f"target_accept must be a float in (0, 1), got {self.target_accept!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")

    def size(self, d: int) -> int:
        """Number of sampled coordinates for ``d`` inputs: weights, biases and ``log sigma``."""
        return self.hidden * d + 2 * self.hidden + 2


def unpack(theta: Tensor, d: int, hidden: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``theta: (..., P)`` -> ``W1 (..., H, d)``, ``b1 (..., H)``, ``w2 (..., H)``, ``b2 (...)``,
    ``log_sigma (...)``."""
    h, lead = hidden, theta.shape[:-1]
    i = 0
    W1 = theta[..., i : i + h * d].reshape(*lead, h, d)
    i += h * d
    b1, w2 = theta[..., i : i + h], theta[..., i + h : i + 2 * h]
    i += 2 * h
    return W1, b1, w2, theta[..., i], theta[..., i + 1]


def network(theta: Tensor, x: Tensor, hidden: int, activation: str) -> Tensor:
    """Function values ``f_w(x)``: ``theta: (S, P)``, ``x: (n, d)`` -> ``(S, n)`` (standardized units)."""
    W1, b1, w2, b2, _ = unpack(theta, x.shape[1], hidden)
    h = ACTIVATIONS[activation](torch.einsum("nd,shd->snh", x, W1) + b1[:, None, :])
    return torch.einsum("snh,sh->sn", h, w2) + b2[:, None]


def log_joint(theta: Tensor, x: Tensor, y: Tensor, settings: NUTSSettings) -> Tensor:
    """Unnormalised log posterior of ``theta: (P,)`` (``log sigma`` last, Jacobian included) given
    ``x: (n, d)``, ``y: (n,)`` in standardized units (scalar). The readable statement of the model;
    the sampler uses :func:`log_joint_and_grad`, its NumPy twin (tested against this one)."""
    W1, b1, w2, b2, log_sigma = unpack(theta, x.shape[1], settings.hidden)
    f = ACTIVATIONS[settings.activation](torch.addmm(b1, x, W1.T)).mv(w2) + b2
    r = (y - f) * torch.exp(-log_sigma)
    lik = -0.5 * r.dot(r) - y.shape[0] * (log_sigma + 0.5 * math.log(2 * math.pi))
    weights = theta[:-1] / settings.prior_sigma
    prior_w = -0.5 * weights.dot(weights)
    # half-normal prior on sigma; sampled as log sigma, so the Jacobian d sigma / d log sigma = sigma adds log_sigma
    prior_s = -0.5 * (torch.exp(log_sigma) / settings.noise_prior) ** 2 + log_sigma
    return lik + prior_w + prior_s


def log_joint_and_grad(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, settings: NUTSSettings
) -> tuple[float, np.ndarray]:
    """:func:`log_joint` and its gradient in NumPy float64 with the backward pass written out
    (``theta: (P,)``, ``x: (n, d)``, ``y: (n,)``): on a net this small, tensor-library overhead per
    operation would dominate NUTS's run time (hundreds of gradients per draw). Runs on the CPU."""
    h_units, n, d = settings.hidden, x.shape[0], x.shape[1]
    W1 = theta[: h_units * d].reshape(h_units, d)
    b1 = theta[h_units * d : h_units * d + h_units]
    w2 = theta[h_units * d + h_units : h_units * d + 2 * h_units]
    b2, log_sigma = theta[-2], theta[-1]
    a = x @ W1.T + b1
    h = np.maximum(a, 0.0) if settings.activation == "relu" else np.tanh(a)
    f = h @ w2 + b2
    prec = np.exp(-2.0 * log_sigma)
    r = y - f
    rr = float(r @ r)
    ps2, ns2 = settings.prior_sigma**2, settings.noise_prior**2
    weights = theta[:-1]
    value = (
        -0.5 * prec * rr
        - n * (log_sigma + 0.5 * math.log(2 * math.pi))
        - 0.5 * float(weights @ weights) / ps2
        - 0.5 * np.exp(2.0 * log_sigma) / ns2
        + log_sigma
    )
    g_f = prec * r
    g_a = np.outer(g_f, w2) * ((a > 0) if settings.activation == "relu" else (1.0 - h * h))
    grad = np.concatenate([(g_a.T @ x).reshape(-1), g_a.sum(0), h.T @ g_f, [g_f.sum(), prec * rr - n]])
    grad[:-1] -= weights / ps2
    grad[-1] += 1.0 - np.exp(2.0 * log_sigma) / ns2
    return value, grad


class _NegLogJoint(torch.autograd.Function):
    """``-log_joint(theta)`` as one autograd node whose backward is the NumPy gradient."""

    @staticmethod
    def forward(ctx: Any, theta: Tensor, x: np.ndarray, y: np.ndarray, settings: NUTSSettings) -> Tensor:
        with np.errstate(over="ignore", invalid="ignore"):  # a wild trial step: an infinite potential, rejected
            value, grad = log_joint_and_grad(theta.detach().cpu().double().numpy(), x, y, settings)
        ctx.save_for_backward(torch.as_tensor(-grad, dtype=theta.dtype, device=theta.device))
        return torch.tensor(-value, dtype=theta.dtype, device=theta.device)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (g,) = ctx.saved_tensors
        return grad_output * g, None, None, None


@dataclass
class NUTSPosterior:
    """Posterior draws ``theta: (chains, samples, P)`` (standardized units), the data scaling, and
    sampler statistics (``divergences``, ``acceptance``, ``step_size``: one entry per chain)."""

    settings: NUTSSettings
    theta: Tensor
    x_shift: Tensor
    x_scale: Tensor
    y_shift: float
    y_scale: float
    stats: dict[str, list[float]] = field(default_factory=dict)

    def function_draws(self, x: Tensor) -> Tensor:
        """``f_w(x)`` for every draw, in the user's units: ``x: (n, d)`` -> ``(chains, samples, n)``."""
        c, s, p = self.theta.shape
        xs = (x.to(self.theta) - self.x_shift) / self.x_scale
        f = network(self.theta.reshape(c * s, p), xs, self.settings.hidden, self.settings.activation)
        return (f * self.y_scale + self.y_shift).reshape(c, s, -1)

    def noise_draws(self) -> Tensor:
        """Noise std per draw in the user's units, ``(chains, samples)``."""
        return self.theta[..., -1].exp() * self.y_scale

    def predictive(self, x: Tensor) -> GaussianMixture:
        """Posterior predictive at ``x: (n, d)``: an equal-weight mixture over all ``chains * samples``
        draws (``members`` = that count), so ``epistemic_variance`` is the variance of the draws'
        means and ``variance`` adds the mean noise variance."""
        c, s, _ = self.theta.shape
        loc = self.function_draws(x).reshape(c * s, -1).T  # (n, C*S)
        scale = self.noise_draws().reshape(1, c * s).expand_as(loc)
        return GaussianMixture(torch.zeros_like(loc), loc, scale, members=c * s, validate_args=False)

    def diagnostics(self, x: Tensor) -> dict[str, Any]:
        """pyro's split R-hat and effective sample size (over chains) for the noise std, the function
        values at ``x: (n, d)`` (worst over the points) and the raw weights (median and worst)."""
        from pyro.infer.mcmc.util import diagnostics

        d = diagnostics({"f": self.function_draws(x), "sigma": self.noise_draws(), "w": self.theta[..., :-1]})

        def arr(name: str, stat: str) -> np.ndarray:
            return np.atleast_1d(d[name][stat].detach().double().cpu().numpy())

        return {
            "sigma_r_hat": float(arr("sigma", "r_hat")[0]),
            "sigma_ess": float(arr("sigma", "n_eff")[0]),
            "f_r_hat_max": float(np.nanmax(arr("f", "r_hat"))),
            "f_r_hat_median": float(np.nanmedian(arr("f", "r_hat"))),
            "f_ess_min": float(np.nanmin(arr("f", "n_eff"))),
            "f_ess_median": float(np.nanmedian(arr("f", "n_eff"))),
            "weights_r_hat_median": float(np.nanmedian(arr("w", "r_hat"))),
            "weights_r_hat_max": float(np.nanmax(arr("w", "r_hat"))),
            "draws": int(self.theta.shape[0] * self.theta.shape[1]),
            "divergences": int(sum(self.stats.get("divergences", []))),
            "acceptance": [float(a) for a in self.stats.get("acceptance", [])],
            "step_size": [float(a) for a in self.stats.get("step_size", [])],
        }


def run_chains(
    potential: Callable[[Tensor], Tensor],
    initial: Callable[[torch.Generator], Tensor],
    settings: NUTSSettings,
    *,
    seed: int = 0,
    tick: Callable[[], None] | None = None,
) -> tuple[Tensor, dict[str, list[float]]]:
    """NUTS chains, one after the other, on ``potential(theta: (P,)) -> scalar`` (minus the log density).

    Chain ``c`` seeds pyro and its initial point ``initial(generator) -> (P,)`` with
    ``seed * 1000 + c``. Returns the kept draws ``(chains, samples, P)`` and per-chain sampler
    statistics (``divergences``, ``acceptance``, ``step_size``). ``tick`` is called once per iteration.
    """
    import pyro
    from pyro.infer import MCMC, NUTS

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    def hook(*_: Any) -> None:
        if tick is not None:
            tick()

    draws, stats = [], {"divergences": [], "acceptance": [], "step_size": []}
    for c in range(settings.chains):
        chain_seed = int(seed) * 1000 + c
        pyro.set_rng_seed(chain_seed)
        init = initial(torch.Generator().manual_seed(chain_seed))
        kernel = NUTS(
            potential_fn=lambda params: potential(params["theta"]),
            max_tree_depth=settings.max_tree_depth,
            target_accept_prob=settings.target_accept,
            full_mass=settings.full_mass,
        )
        mcmc = MCMC(
            kernel,
            num_samples=settings.samples,
            warmup_steps=settings.warmup,
            initial_params={"theta": init},
            hook_fn=hook,
            disable_progbar=True,
        )
        mcmc.run()
        draws.append(mcmc.get_samples()["theta"].detach())
        diag = mcmc.diagnostics()
        stats["divergences"].append(float(len(diag["divergences"]["chain 0"])))
        stats["acceptance"].append(float(diag["acceptance rate"]["chain 0"]))
        stats["step_size"].append(float(kernel.step_size))
    return torch.stack(draws), stats


def nuts_posterior(
    X: Any,
    y: Any,
    settings: NUTSSettings | None = None,
    *,
    seed: int = 0,
    tick: Callable[[], None] | None = None,
) -> NUTSPosterior:
    """Sample the BNN posterior given ``X: (n, d)``, ``y: (n,)`` with NUTS, in float64.

    Chains start from prior draws of the weights and ``sigma = noise_prior / 2``; seeds and
    ``tick``: see :func:`run_chains`.
    """
    from hidlr.uq.models.scaling import fit_scaling

    settings = settings or NUTSSettings()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if x.dim() != 2 or yt.dim() != 1 or x.shape[0] != yt.shape[0] or x.shape[0] < 2:
        raise ValueError(f"X must be (n, d) and y (n,) with n >= 2, got {tuple(x.shape)} and {tuple(yt.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(yt).all()):
        raise ValueError("X and y must be finite")
    sc = fit_scaling(x, yt, "standard", warn=False)
    x_np = ((x - sc["x_shift"]) / sc["x_scale"]).numpy()
    y_np = ((yt - sc["y_shift"]) / sc["y_scale"]).numpy()
    p = settings.size(x.shape[1])

    def initial(gen: torch.Generator) -> Tensor:
        init = torch.randn(p, generator=gen, dtype=torch.float64) * settings.prior_sigma
        init[-1] = math.log(0.5 * settings.noise_prior)
        return init

    theta, stats = run_chains(
        lambda t: _NegLogJoint.apply(t, x_np, y_np, settings), initial, settings, seed=seed, tick=tick
    )
    return NUTSPosterior(
        settings=settings,
        theta=theta,
        x_shift=sc["x_shift"],
        x_scale=sc["x_scale"],
        y_shift=float(sc["y_shift"]),
        y_scale=float(sc["y_scale"]),
        stats=stats,
    )
