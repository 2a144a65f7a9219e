"""Mixture density network (Bishop 1994): K Gaussian components on an MLP trunk."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.blocks import mixture_collapse_penalty, mlp_trunk, spread_quantiles
from hidlr.uq.models.estimator import Estimator, OptimizerSpec
from hidlr.uq.models.layers import inverse_softplus


class MDNNet(nn.Module):
    """MDN net in standardized units: ``forward(x: (n, d)) -> GaussianMixture`` with K components.

    ``scale = softplus(raw) + scale_floor`` (the floor is added outside the nonlinearity, so no
    component can shrink below it and the log-density stays finite). ``loss(x, y)`` is the mean
    negative log-likelihood (through log-sum-exp) plus ``collapse_penalty`` times
    :func:`mixture_collapse_penalty` of the batch.

    Args:
        in_features: ``d``.
        components: ``K``.
        hidden, activation: trunk.
        scale_floor: lower bound on every component's scale (standardized units).
        collapse_penalty: weight of the batch-averaged mixing-weight penalty (0 disables it).
        init_loc: optional ``(K,)`` initial component means (bias of the mean head); default
            evenly spaced in ``[-1.5, 1.5]``.
    """

    def __init__(
        self,
        in_features: int,
        components: int = 5,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        scale_floor: float = 1e-3,
        collapse_penalty: float = 1e-2,
        init_loc: Tensor | None = None,
    ) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        if scale_floor <= 0:
            raise ValueError(f"scale_floor must be positive, got {scale_floor}")
        hidden = checks.check_hidden(hidden)
        self.components = components
        self.scale_floor = float(scale_floor)
        self.collapse_penalty = float(collapse_penalty)
        self.trunk = mlp_trunk(in_features, hidden, activation)
        self.logits = nn.Linear(hidden[-1], components)
        self.loc = nn.Linear(hidden[-1], components)
        self.scale = nn.Linear(hidden[-1], components)
        with torch.no_grad():
            if init_loc is None:
                init_loc = torch.linspace(-1.5, 1.5, components) if components > 1 else torch.zeros(1)
            self.loc.bias.copy_(torch.as_tensor(init_loc, dtype=self.loc.bias.dtype))
            # small input dependence at the start: the spread set by the bias is not washed out
            self.loc.weight.mul_(0.1)
            self.logits.weight.mul_(0.1)
            self.logits.bias.zero_()
            self.scale.weight.mul_(0.1)
            self.scale.bias.fill_(inverse_softplus(max(1.0 / math.sqrt(components) - self.scale_floor, 1e-3)))

    def params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture parameters for ``x: (..., d)``: logits, loc, scale, each ``(..., K)``."""
        h = self.trunk(x)
        return self.logits(h), self.loc(h), F.softplus(self.scale(h)) + self.scale_floor

    def forward(self, x: Tensor) -> GaussianMixture:
        """Predictive mixture for ``x: (n, d)`` (standardized units)."""
        logits, loc, scale = self.params(x)
        return GaussianMixture(logits, loc, scale, validate_args=False)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean NLL of ``y: (b,)`` given ``x: (b, d)`` plus the collapse penalty (scalar)."""
        logits, loc, scale = self.params(x)
        nll = -GaussianMixture(logits, loc, scale, validate_args=False).log_prob(y).mean()
        if self.collapse_penalty > 0 and self.components > 1:
            nll = nll + self.collapse_penalty * mixture_collapse_penalty(logits)
        return nll


#: Snapshots of a default MDN (see :class:`MDN`).
SNAPSHOTS = 5


class MDN(Estimator):
    """Mixture density network estimator: ``MDN(components=5).fit(X, y).predict_proba(X_test)``.

    The mean head's bias starts at the ``(k + 1/2)/K`` quantiles of the standardized training
    targets, so the components start spread over the data. Hi-DLR param groups: ``trunk``,
    ``logits`` (mixing), ``loc`` (means), ``scale``. ``self.module_.net`` is an :class:`MDNNet`.

    Args:
        components: ``K``.
        scale_floor: lower bound of each component's scale, as a fraction of the target's std.
        collapse_penalty: weight of the penalty on batch-averaged mixing weights (see
            :func:`~hidlr.uq.models.blocks.mixture_collapse_penalty`); at most ``collapse_penalty * log K`` nats.
        snapshots: with early stopping, the predictive is the equal mixture of the net at this many
            epochs, those with the lowest validation NLL (a snapshot ensemble: as many copies of
            the weights, and as many forward passes per prediction; 1: the best epoch's net alone).
            The snapshots are the predictive's ``members``, so its ``epistemic_variance`` is their
            disagreement. With ``refit=True``: 1 (the refit trains one net). Measured on the UCI sets: see
            ``docs/guide/uncertainty.md``.
        The others: see :class:`~hidlr.uq.models.estimator.Estimator`.

    Trains with plain Adam by default (``optimizer="hidlr"`` for Hi-DLR over the four groups): in
    the UCI measurements Hi-DLR was not reliably as good for this model (see the UCI report).
    """

    default_optimizer = "adam"

    def __init__(
        self,
        components: int = 5,
        *,
        scale_floor: float = 1e-3,
        collapse_penalty: float = 1e-2,
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
        snapshots: int = SNAPSHOTS,
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
        self.components = components
        self.scale_floor = scale_floor
        self.collapse_penalty = collapse_penalty
        self.snapshots = snapshots

    def _snapshots(self) -> int:
        return checks.check_int("snapshots", self.snapshots)

    def _check_model_params(self) -> None:
        checks.check_int("components", self.components)
        self._snapshots()
        checks.check_float("scale_floor", self.scale_floor)
        checks.check_float("collapse_penalty", self.collapse_penalty, low_open=False)

    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> MDNNet:
        k = checks.check_int("components", self.components)
        return MDNNet(
            in_features,
            k,
            hidden=checks.check_hidden(self.hidden),
            activation=self.activation,
            scale_floor=self.scale_floor,
            collapse_penalty=self.collapse_penalty,
            init_loc=spread_quantiles(y_std, k).cpu(),
        )

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(module, MDNNet):
            raise TypeError(f"param_groups expects an MDNNet, got {type(module).__name__}")
        return [
            {"name": "trunk", "params": list(module.trunk.parameters())},
            {"name": "logits", "params": list(module.logits.parameters())},
            {"name": "loc", "params": list(module.loc.parameters())},
            {"name": "scale", "params": list(module.scale.parameters())},
        ]
