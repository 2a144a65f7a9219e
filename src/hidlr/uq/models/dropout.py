"""Monte Carlo dropout (Gal & Ghahramani 2016): dropout kept on at prediction, T passes averaged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.blocks import gaussian_log_lik
from hidlr.uq.models.estimator import STOCHASTIC_HIDLR_OPTIONS, Estimator, OptimizerSpec
from hidlr.uq.models.layers import inverse_softplus


class MCDropoutNet(nn.Module):
    """MLP with dropout after every hidden activation and a Gaussian head, standardized units.

    Dropout is always active (training and prediction alike): each call draws fresh masks, one per
    row. Noise: a learned scalar ``softplus(noise_rho) + noise_floor`` or, if ``heteroscedastic``, a
    second linear head.

    Args:
        in_features: ``d``.
        hidden, activation: trunk.
        dropout: drop probability ``p`` in ``[0, 1)``.
        heteroscedastic, noise_init, noise_floor: noise model (standardized units).
    """

    def __init__(
        self,
        in_features: int,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        dropout: float = 0.05,
        heteroscedastic: bool = False,
        noise_init: float = 0.5,
        noise_floor: float = 1e-3,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if noise_floor <= 0 or noise_init <= noise_floor:
            raise ValueError(f"need 0 < noise_floor < noise_init, got {noise_floor}, {noise_init}")
        self.p = float(dropout)
        self.heteroscedastic = heteroscedastic
        self.noise_floor = float(noise_floor)
        widths = checks.check_hidden(hidden)
        self.layers = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = in_features
        for h in widths:
            self.layers.append(nn.Linear(width, h))
            self.acts.append(checks.activation_module(activation))
            width = h
        self.loc = nn.Linear(width, 1)
        rho0 = inverse_softplus(noise_init - self.noise_floor)
        if heteroscedastic:
            self.noise = nn.Linear(width, 1)
            with torch.no_grad():
                self.noise.weight.mul_(0.1)
                self.noise.bias.fill_(rho0)
        else:
            self.noise_rho = nn.Parameter(torch.tensor(rho0))

    def sample_params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One dropout pass: ``x: (..., d)`` -> loc, scale ``(...)``."""
        h = x
        for layer, act in zip(self.layers, self.acts):
            h = F.dropout(act(layer(h)), self.p, training=True)
        loc = self.loc(h)[..., 0]
        raw = self.noise(h)[..., 0] if self.heteroscedastic else self.noise_rho.expand_as(loc)
        return loc, F.softplus(raw) + self.noise_floor

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean Gaussian NLL of ``y: (b,)`` under one dropout pass over ``x: (b, d)`` (scalar)."""
        loc, scale = self.sample_params(x)
        return -gaussian_log_lik(y, loc, scale).mean()

    def predictive(self, x: Tensor, samples: int = 100) -> GaussianMixture:
        """``samples`` dropout passes over ``x: (n, d)``: a mixture with ``members = samples``."""
        loc, scale = self.sample_params(x.expand(samples, *x.shape))  # (T, n)
        return GaussianMixture(torch.zeros_like(loc.T), loc.T, scale.T, members=samples, validate_args=False)

    def forward(self, x: Tensor) -> GaussianMixture:
        """Predictive mixture with 100 dropout passes."""
        return self.predictive(x)


class MCDropout(Estimator):
    """MC-dropout regressor: ``MCDropout(dropout=0.05).fit(X, y).predict_proba(X_test)``.

    Prediction averages ``samples`` (default 100) dropout passes into a mixture with
    ``members = samples`` (epistemic = spread of the pass means, aleatoric = learned noise). Hi-DLR
    param groups: ``trunk``, ``loc`` (mean head), ``noise``.
    """

    stochastic = True
    hidlr_options = STOCHASTIC_HIDLR_OPTIONS

    def __init__(
        self,
        *,
        dropout: float = 0.05,
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
        self.dropout = dropout
        self.heteroscedastic = heteroscedastic
        self.noise_init = noise_init
        self.noise_floor = noise_floor
        self.samples = samples

    def _check_model_params(self) -> None:
        checks.check_float("dropout", self.dropout, high=1.0, low_open=False)
        checks.check_float("noise_floor", self.noise_floor)
        checks.check_float("noise_init", self.noise_init, low=self.noise_floor)
        checks.check_flag("heteroscedastic", self.heteroscedastic)

    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> MCDropoutNet:
        return MCDropoutNet(
            in_features,
            hidden=checks.check_hidden(self.hidden),
            activation=self.activation,
            dropout=self.dropout,
            heteroscedastic=self.heteroscedastic,
            noise_init=self.noise_init,
            noise_floor=self.noise_floor,
        )

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(module, MCDropoutNet):
            raise TypeError(f"param_groups expects an MCDropoutNet, got {type(module).__name__}")
        noise = list(module.noise.parameters()) if module.heteroscedastic else [module.noise_rho]
        return [
            {"name": "trunk", "params": list(module.layers.parameters())},
            {"name": "loc", "params": list(module.loc.parameters())},
            {"name": "noise", "params": noise},
        ]
