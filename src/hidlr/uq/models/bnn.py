"""Variational Bayesian neural network (Bayes by Backprop, mean-field Gaussian, local reparameterisation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.blocks import bayesian_trunk, gaussian_log_lik, posterior_groups
from hidlr.uq.models.estimator import STOCHASTIC_HIDLR_OPTIONS, Estimator, OptimizerSpec
from hidlr.uq.models.layers import (
    BayesianLinear,
    apply_layer,
    bayesian_kl,
    inverse_softplus,
    posterior_kl,
)


class BNNNet(nn.Module):
    """Mean-field Gaussian BNN with a Gaussian likelihood, in standardized units.

    Layers: ``BayesianLinear`` + activation per hidden width, then a ``BayesianLinear`` to the
    mean. Noise ``sigma``: one learned scalar (``heteroscedastic=False``; a point estimate,
    ``softplus(noise_rho) + noise_floor``) or a second ``BayesianLinear`` output head on the last
    hidden layer (``heteroscedastic=True``).

    ``loss(x, y)`` is the negative ELBO per training point for one minibatch:
    ``-(mean over the batch of log N(y; f_w(x), sigma^2)) + KL(q || prior) / n_train`` with one
    weight sample per row (local reparameterisation). Summed over the ``n_train / b`` batches of an
    epoch this is ``-ELBO / n_train`` in expectation, i.e. the KL is divided by the number of
    training points, not by the number of batches or parameters.

    Args:
        in_features: ``d``.
        dataset_size: ``n_train`` (can be overridden per call of :meth:`loss`).
        hidden, activation: trunk.
        prior_sigma: std of the zero-mean Gaussian prior on every weight and bias.
        posterior_scale: initial posterior std, at most ``prior_sigma`` (a posterior starts no wider
            than its prior; default ``0.05 * prior_sigma``, see ``BayesianLinear``).
        heteroscedastic: input-dependent noise.
        noise_init, noise_floor: initial noise std and its lower bound (standardized units).
    """

    def __init__(
        self,
        in_features: int,
        dataset_size: int,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        prior_sigma: float = 1.0,
        posterior_scale: float | None = None,
        heteroscedastic: bool = False,
        noise_init: float = 0.5,
        noise_floor: float = 1e-3,
    ) -> None:
        super().__init__()
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be positive, got {dataset_size}")
        if noise_floor <= 0 or noise_init <= noise_floor:
            raise ValueError(f"need 0 < noise_floor < noise_init, got {noise_floor}, {noise_init}")
        self.dataset_size = int(dataset_size)
        self.heteroscedastic = heteroscedastic
        self.noise_floor = float(noise_floor)
        opts = {"prior_sigma": prior_sigma, "posterior_scale": posterior_scale}
        widths = checks.check_hidden(hidden)
        self.hidden = bayesian_trunk(in_features, widths, activation, **opts)
        width = widths[-1]
        self.out = BayesianLinear(width, 1, **opts)
        rho0 = inverse_softplus(noise_init - self.noise_floor)
        if heteroscedastic:
            self.noise = BayesianLinear(width, 1, **opts)
            with torch.no_grad():
                self.noise.weight_mu.mul_(0.1)
                self.noise.bias_mu.fill_(rho0)
        else:
            self.noise_rho = nn.Parameter(torch.tensor(rho0))

    def sample_params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One posterior sample per row (local reparameterisation): ``x: (..., d)`` -> loc, scale ``(...)``."""
        return self._sample(x, with_kl=False)[:2]

    def _sample(self, x: Tensor, with_kl: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """loc, scale ``(...)`` and, if ``with_kl``, the KL computed from the same ``softplus(rho)``."""
        posterior: list[tuple[Tensor, Tensor, float]] = []

        def apply(layer: nn.Module, h: Tensor) -> Tensor:
            return apply_layer(layer, h, posterior if with_kl else None)

        h = x
        for layer in self.hidden:
            h = apply(layer, h)
        loc = apply(self.out, h)[..., 0]
        raw = apply(self.noise, h)[..., 0] if self.heteroscedastic else self.noise_rho.expand_as(loc)
        kl = posterior_kl(posterior) if with_kl else None
        return loc, F.softplus(raw) + self.noise_floor, kl

    def kl(self) -> Tensor:
        """``KL(q || prior)`` over all Bayesian weights, closed form (scalar)."""
        return bayesian_kl(self)

    def loss(self, x: Tensor, y: Tensor, *, n_train: int | None = None) -> Tensor:
        """Negative ELBO per training point on a minibatch ``x: (b, d)``, ``y: (b,)`` (scalar)."""
        n = self.dataset_size if n_train is None else n_train
        loc, scale, kl = self._sample(x, with_kl=True)
        return -gaussian_log_lik(y, loc, scale).mean() + kl / n

    def predictive(self, x: Tensor, samples: int = 100) -> GaussianMixture:
        """Monte Carlo predictive for ``x: (n, d)``: a mixture of ``samples`` Gaussians per row with
        ``members = samples`` (one per weight draw), so its variance splits into epistemic and
        aleatoric parts.
        """
        loc, scale = self.sample_params(x.expand(samples, *x.shape))  # (S, n)
        return GaussianMixture(torch.zeros_like(loc.T), loc.T, scale.T, members=samples, validate_args=False)

    def forward(self, x: Tensor) -> GaussianMixture:
        """Predictive mixture with 100 Monte Carlo samples (see :meth:`predictive`)."""
        return self.predictive(x)


class BNN(Estimator):
    """Variational BNN estimator: ``BNN().fit(X, y).predict_proba(X_test)``.

    Bayes by Backprop with local reparameterisation (see :class:`BNNNet`). Prediction draws
    ``samples`` (default 100) weight samples; the result is a mixture with ``members = samples``
    whose ``epistemic_variance`` and ``aleatoric_variance`` add up to its variance. Hi-DLR param
    groups: ``means`` (posterior means), ``scales`` (posterior ``rho``), ``noise``.

    Args:
        prior_sigma, posterior_scale, heteroscedastic, noise_init, noise_floor: see :class:`BNNNet`.
        samples: default Monte Carlo samples at prediction.
        The others: see :class:`~hidlr.uq.models.estimator.Estimator`.
    """

    stochastic = True
    hidlr_options = STOCHASTIC_HIDLR_OPTIONS

    def __init__(
        self,
        *,
        prior_sigma: float = 1.0,
        posterior_scale: float | None = None,
        heteroscedastic: bool = False,
        noise_init: float = 0.5,
        noise_floor: float = 1e-3,
        samples: int = 100,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        epochs: int | None = None,
        batch_size: int = 32,
        lr: float = 3e-3,
        optimizer: OptimizerSpec = None,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int | None = None,
        refit: bool = False,
        variance_scaling: bool = True,
        target_scaling: str = "standard",
        random_state: int = 0,
    ) -> None:
        super().__init__(
            hidden=hidden,
            activation=activation,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            patience=patience,
            refit=refit,
            variance_scaling=variance_scaling,
            target_scaling=target_scaling,
            random_state=random_state,
        )
        self.prior_sigma = prior_sigma
        self.posterior_scale = posterior_scale
        self.heteroscedastic = heteroscedastic
        self.noise_init = noise_init
        self.noise_floor = noise_floor
        self.samples = samples

    def _check_model_params(self) -> None:
        prior_sigma = checks.check_float("prior_sigma", self.prior_sigma)
        checks.check_posterior_scale(self.posterior_scale, prior_sigma)
        checks.check_float("noise_floor", self.noise_floor)
        checks.check_float("noise_init", self.noise_init, low=self.noise_floor)
        checks.check_flag("heteroscedastic", self.heteroscedastic)

    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> BNNNet:
        return BNNNet(
            in_features,
            dataset_size,
            hidden=checks.check_hidden(self.hidden),
            activation=self.activation,
            prior_sigma=self.prior_sigma,
            posterior_scale=self.posterior_scale,
            heteroscedastic=self.heteroscedastic,
            noise_init=self.noise_init,
            noise_floor=self.noise_floor,
        )

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(module, BNNNet):
            raise TypeError(f"param_groups expects a BNNNet, got {type(module).__name__}")
        noise_mod = [module.noise] if module.heteroscedastic else []
        means, scales = posterior_groups(module, exclude=noise_mod)
        noise = list(module.noise.parameters()) if module.heteroscedastic else [module.noise_rho]
        return [
            {"name": "means", "params": means},
            {"name": "scales", "params": scales},
            {"name": "noise", "params": noise},
        ]
