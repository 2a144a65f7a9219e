"""MDN with Bayesian weights: a mixture head (aleatoric, multimodal) on a variational posterior over
all weights (epistemic)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.blocks import (
    bayesian_trunk,
    mixture_collapse_penalty,
    posterior_groups,
    spread_quantiles,
)
from hidlr.uq.models.estimator import STOCHASTIC_HIDLR_OPTIONS, Estimator, OptimizerSpec
from hidlr.uq.models.layers import (
    BayesianLinear,
    apply_layer,
    bayesian_kl,
    inverse_softplus,
    posterior_kl,
)


class BayesianMDNNet(nn.Module):
    """MDN whose trunk and heads are :class:`BayesianLinear` layers (mean-field Gaussian VI).

    ``loss(x, y)`` = mean NLL of the mixture for one weight sample per row
    ``+ KL(q || prior) / n_train + collapse_penalty * mixture_collapse_penalty(logits)``.
    ``predictive(x, samples=S)``: ``S`` weight samples, each a ``K``-component mixture, joined into
    one mixture of ``S * K`` components with ``members = S``.

    Args:
        in_features, components, dataset_size: ``d``, ``K``, ``n_train``.
        hidden, activation: trunk.
        prior_sigma, posterior_scale: see :class:`BayesianLinear`.
        scale_floor, collapse_penalty: see :class:`~hidlr.uq.models.mdn.MDNNet`.
        init_loc: ``(K,)`` initial component means.
    """

    def __init__(
        self,
        in_features: int,
        components: int,
        dataset_size: int,
        *,
        hidden: int | Sequence[int] = (50,),
        activation: str | Callable[[], nn.Module] = "relu",
        prior_sigma: float = 1.0,
        posterior_scale: float | None = None,
        scale_floor: float = 1e-3,
        collapse_penalty: float = 1e-2,
        init_loc: Tensor | None = None,
    ) -> None:
        super().__init__()
        if components < 1 or dataset_size < 1 or scale_floor <= 0:
            raise ValueError("need components >= 1, dataset_size >= 1 and scale_floor > 0")
        self.components = components
        self.dataset_size = int(dataset_size)
        self.scale_floor = float(scale_floor)
        self.collapse_penalty = float(collapse_penalty)
        opts = {"prior_sigma": prior_sigma, "posterior_scale": posterior_scale}
        widths = checks.check_hidden(hidden)
        self.trunk = bayesian_trunk(in_features, widths, activation, **opts)
        width = widths[-1]
        self.logits = BayesianLinear(width, components, **opts)
        self.loc = BayesianLinear(width, components, **opts)
        self.scale = BayesianLinear(width, components, **opts)
        with torch.no_grad():
            if init_loc is None:
                init_loc = torch.linspace(-1.5, 1.5, components) if components > 1 else torch.zeros(1)
            self.loc.bias_mu.copy_(torch.as_tensor(init_loc, dtype=self.loc.bias_mu.dtype))
            for head in (self.logits, self.loc, self.scale):
                head.weight_mu.mul_(0.1)
            self.logits.bias_mu.zero_()
            self.scale.bias_mu.fill_(inverse_softplus(max(1.0 / math.sqrt(components) - self.scale_floor, 1e-3)))

    def sample_params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One weight sample per row: ``x: (..., d)`` -> logits, loc, scale, each ``(..., K)``."""
        logits, loc, scale, _ = self._sample(x, with_kl=False)
        return logits, loc, scale

    def _sample(self, x: Tensor, with_kl: bool) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """As :meth:`sample_params`, plus the KL from the same ``softplus(rho)`` if ``with_kl``."""
        posterior: list[tuple[Tensor, Tensor, float]] = []

        def apply(layer: nn.Module, h: Tensor) -> Tensor:
            return apply_layer(layer, h, posterior if with_kl else None)

        h = x
        for layer in self.trunk:
            h = apply(layer, h)
        logits, loc, raw = apply(self.logits, h), apply(self.loc, h), apply(self.scale, h)
        return logits, loc, F.softplus(raw) + self.scale_floor, posterior_kl(posterior) if with_kl else None

    def kl(self) -> Tensor:
        """``KL(q || prior)`` over all weights (scalar)."""
        return bayesian_kl(self)

    def loss(self, x: Tensor, y: Tensor, *, n_train: int | None = None) -> Tensor:
        """Negative ELBO per training point on ``x: (b, d)``, ``y: (b,)``, plus the collapse penalty."""
        n = self.dataset_size if n_train is None else n_train
        logits, loc, scale, kl = self._sample(x, with_kl=True)
        loss = -GaussianMixture(logits, loc, scale, validate_args=False).log_prob(y).mean() + kl / n
        if self.collapse_penalty > 0 and self.components > 1:
            loss = loss + self.collapse_penalty * mixture_collapse_penalty(logits)
        return loss

    def predictive(self, x: Tensor, samples: int = 50) -> GaussianMixture:
        """Mixture over ``samples`` weight draws for ``x: (n, d)``: ``(n, samples * K)`` components,
        ``members = samples`` (member-major blocks of ``K``)."""
        logits, loc, scale = self.sample_params(x.expand(samples, *x.shape))  # (S, n, K)
        n = x.shape[0]
        log_w = torch.log_softmax(logits, dim=-1) - math.log(samples)

        def flat(t: Tensor) -> Tensor:
            return t.permute(1, 0, 2).reshape(n, samples * self.components)

        return GaussianMixture(flat(log_w), flat(loc), flat(scale), members=samples, validate_args=False)

    def forward(self, x: Tensor) -> GaussianMixture:
        """Predictive mixture with 50 weight samples."""
        return self.predictive(x)


class BayesianMDN(Estimator):
    """MDN with a mean-field Gaussian posterior over every weight: ``BayesianMDN(components=3)``.

    Carries both kinds of uncertainty: the mixture per weight sample (aleatoric, possibly
    multimodal) and the spread between weight samples (epistemic). Hi-DLR param groups: ``trunk``,
    ``logits``, ``loc``, ``scale`` (posterior means of each part) and ``posterior_scales`` (all ``rho``).

    Trains with Hi-DLR by default (``hidlr_options``: :data:`~hidlr.uq.models.estimator.STOCHASTIC_HIDLR_OPTIONS`).
    Args: ``components``, ``prior_sigma``, ``posterior_scale``, ``scale_floor``, ``collapse_penalty``
    as in :class:`BayesianMDNNet` (``posterior_scale`` at most ``prior_sigma``: a posterior starts no
    wider than its prior); ``samples``: weight draws at prediction; the others: see
    :class:`~hidlr.uq.models.estimator.Estimator`.
    """

    stochastic = True
    hidlr_options = STOCHASTIC_HIDLR_OPTIONS

    def __init__(
        self,
        components: int = 5,
        *,
        prior_sigma: float = 1.0,
        posterior_scale: float | None = None,
        scale_floor: float = 1e-3,
        collapse_penalty: float = 1e-2,
        samples: int = 50,
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
        self.components = components
        self.prior_sigma = prior_sigma
        self.posterior_scale = posterior_scale
        self.scale_floor = scale_floor
        self.collapse_penalty = collapse_penalty
        self.samples = samples

    def _check_model_params(self) -> None:
        checks.check_int("components", self.components)
        prior_sigma = checks.check_float("prior_sigma", self.prior_sigma)
        checks.check_posterior_scale(self.posterior_scale, prior_sigma)
        checks.check_float("scale_floor", self.scale_floor)
        checks.check_float("collapse_penalty", self.collapse_penalty, low_open=False)

    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> BayesianMDNNet:
        return BayesianMDNNet(
            in_features,
            int(self.components),
            dataset_size,
            hidden=checks.check_hidden(self.hidden),
            activation=self.activation,
            prior_sigma=self.prior_sigma,
            posterior_scale=self.posterior_scale,
            scale_floor=self.scale_floor,
            collapse_penalty=self.collapse_penalty,
            init_loc=spread_quantiles(y_std, int(self.components)).cpu(),
        )

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(module, BayesianMDNNet):
            raise TypeError(f"param_groups expects a BayesianMDNNet, got {type(module).__name__}")
        groups = []
        parts = (("trunk", module.trunk), ("logits", module.logits), ("loc", module.loc), ("scale", module.scale))
        for name, part in parts:
            groups.append({"name": name, "params": posterior_groups(part)[0]})
        groups.append({"name": "posterior_scales", "params": posterior_groups(module)[1]})
        return groups
