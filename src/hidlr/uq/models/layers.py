"""Bayesian layers: a mean-field Gaussian linear layer with local reparameterisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def inverse_softplus(x: float) -> float:
    """``rho`` with ``softplus(rho) = x`` (x > 0)."""
    if x <= 0:
        raise ValueError(f"inverse_softplus needs a positive value, got {x}")
    return x + math.log(-math.expm1(-x))


def gaussian_kl(mu: Tensor, sigma: Tensor, prior_sigma: float) -> Tensor:
    """Closed-form ``KL(N(mu, sigma^2) || N(0, prior_sigma^2))`` summed over all entries (scalar)."""
    # sum of log(p / s) + (s^2 + mu^2) / (2 p^2) - 1/2, with the constants taken out of the sum
    const = mu.numel() * (math.log(prior_sigma) - 0.5)
    return (0.5 / prior_sigma**2 * (sigma.square() + mu.square()) - sigma.log()).sum() + const


class BayesianLinear(nn.Module):
    """Linear layer with a factorised Gaussian posterior over its weights and bias.

    ``q(W_ij) = N(weight_mu_ij, softplus(weight_rho_ij)^2)`` (same for the bias) and prior
    ``p(W_ij) = N(0, prior_sigma^2)``. The forward pass samples the *pre-activations* by local
    reparameterisation (Kingma et al. 2015): for input ``x: (..., in)``

        mean = x @ weight_mu.T + bias_mu                          (..., out)
        var  = x^2 @ (weight_sigma^2).T + bias_sigma^2            (..., out)
        out  = mean + sqrt(var) * eps,   eps ~ N(0, 1)            (..., out)

    which has exactly the distribution of ``x @ W.T + b`` with ``W, b ~ q`` drawn independently for
    each row of ``x`` (lower gradient variance than one shared weight sample).

    Args:
        in_features, out_features: sizes.
        prior_sigma: standard deviation of the zero-mean Gaussian prior.
        posterior_scale: initial ``softplus(rho)``; default ``0.05 * prior_sigma``, inside the
            1e-2..1e-1 range of the prior that keeps the initial predictive spread from vanishing
            while the means can still learn (tiny initial scales, e.g. ``softplus(-6)``, leave the
            model almost deterministic for most of training).
        bias: include a bias.

    Attributes: ``weight_mu, weight_rho: (out, in)``; ``bias_mu, bias_rho: (out,)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        prior_sigma: float = 1.0,
        posterior_scale: float | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if prior_sigma <= 0:
            raise ValueError(f"prior_sigma must be positive, got {prior_sigma}")
        self.in_features, self.out_features = in_features, out_features
        self.prior_sigma = float(prior_sigma)
        scale = 0.05 * self.prior_sigma if posterior_scale is None else float(posterior_scale)
        rho0 = inverse_softplus(scale)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), rho0))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(out_features))
            self.bias_rho = nn.Parameter(torch.full((out_features,), rho0))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self.reset_means()

    def reset_means(self) -> None:
        """Initialise the posterior means like ``nn.Linear`` (uniform, fan-in scaled)."""
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        if self.bias_mu is not None:
            nn.init.uniform_(self.bias_mu, -bound, bound)

    @property
    def weight_sigma(self) -> Tensor:
        """Posterior standard deviations of the weights, ``(out, in)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor | None:
        """Posterior standard deviations of the bias, ``(out,)``."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of the pre-activations under q for input ``x: (..., in)``: two ``(..., out)``."""
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        bias_var = None if self.bias_rho is None else self.bias_sigma.square()
        var = F.linear(x.square(), self.weight_sigma.square(), bias_var)
        return mean, var

    def forward(self, x: Tensor, sample: bool = True) -> Tensor:
        """``x: (..., in) -> (..., out)``: a local-reparameterisation sample (or the mean if not ``sample``)."""
        mean, var = self.moments(x)
        return self._draw(mean, var) if sample else mean

    @staticmethod
    def _draw(mean: Tensor, var: Tensor) -> Tensor:
        # clamp: finite gradient where the variance is exactly 0 (no bias and a zero input)
        return mean + var.clamp_min(torch.finfo(var.dtype).tiny).sqrt() * torch.randn_like(mean)

    def forward_posterior(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor, float]]]:
        """A sample as in :meth:`forward` plus the ``(mu, sigma, prior_sigma)`` of its weight and
        bias, sharing one ``softplus`` of each ``rho`` (for :func:`posterior_kl`)."""
        w_sigma = F.softplus(self.weight_rho)
        parts = [(self.weight_mu, w_sigma, self.prior_sigma)]
        if self.bias_mu is None:
            b_var = None
        else:
            b_sigma = F.softplus(self.bias_rho)
            parts.append((self.bias_mu, b_sigma, self.prior_sigma))
            b_var = b_sigma.square()
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        var = F.linear(x.square(), w_sigma.square(), b_var)
        return self._draw(mean, var), parts

    def forward_kl(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """A sample as in :meth:`forward` and :meth:`kl`, sharing one ``softplus`` of each ``rho``:
        ``(..., out)`` and a scalar."""
        out, parts = self.forward_posterior(x)
        return out, posterior_kl(parts)

    def kl(self) -> Tensor:
        """``KL(q || prior)`` of all weights and biases, in closed form (scalar)."""
        total = gaussian_kl(self.weight_mu, self.weight_sigma, self.prior_sigma)
        if self.bias_mu is not None:
            total = total + gaussian_kl(self.bias_mu, self.bias_sigma, self.prior_sigma)
        return total

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, prior_sigma={self.prior_sigma}"


def bayesian_kl(module: nn.Module) -> Tensor:
    """Sum of ``kl()`` over every :class:`BayesianLinear` inside ``module`` (scalar)."""
    terms = [m.kl() for m in module.modules() if isinstance(m, BayesianLinear)]
    if not terms:
        raise ValueError("module contains no BayesianLinear layer")
    return torch.stack(terms).sum()


def posterior_kl(parts: list[tuple[Tensor, Tensor, float]]) -> Tensor:
    """``sum KL(N(mu, sigma^2) || N(0, prior^2))`` over ``(mu, sigma, prior)`` triples (scalar).

    Tensors with the same prior are flattened into one vector first, so a whole net's KL is a
    handful of kernels instead of a few per tensor.
    """
    if not parts:
        raise ValueError("posterior_kl needs at least one (mu, sigma, prior_sigma) triple")
    by_prior: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
    for mu, sigma, prior in parts:
        mus, sigmas = by_prior.setdefault(float(prior), ([], []))
        mus.append(mu.reshape(-1))
        sigmas.append(sigma.reshape(-1))
    terms = [gaussian_kl(torch.cat(mus), torch.cat(sigmas), prior) for prior, (mus, sigmas) in by_prior.items()]
    return terms[0] if len(terms) == 1 else torch.stack(terms).sum()


def apply_layer(layer: nn.Module, h: Tensor, posterior: list[tuple[Tensor, Tensor, float]] | None) -> Tensor:
    """Apply ``layer`` to ``h``; for a :class:`BayesianLinear`, when ``posterior`` is given, also
    append its ``(mu, sigma, prior_sigma)`` triples (so a net gets its KL from the same forward
    pass with one :func:`posterior_kl`)."""
    if posterior is not None and isinstance(layer, BayesianLinear):
        out, parts = layer.forward_posterior(h)
        posterior.extend(parts)
        return out
    return layer(h)
