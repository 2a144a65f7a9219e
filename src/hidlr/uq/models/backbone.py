"""A feature extractor in front of one of the nets of :mod:`hidlr.uq.models` (an image CNN, say).

The nets (:class:`~hidlr.uq.models.mdn.MDNNet`, :class:`~hidlr.uq.models.bnn.BNNNet`,
:class:`~hidlr.uq.models.bayesian_mdn.BayesianMDNNet`, ...) take feature rows ``(b, f)``;
:class:`BackboneNet` puts any ``nn.Module`` mapping inputs ``(b, d)`` to ``(b, f)`` in front of one,
trained jointly through the head's own loss.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture


class BackboneNet(nn.Module):
    """``head(backbone(x))``: the head's predictive mixture on learned features.

    ``forward(x: (n, d)) -> GaussianMixture`` and ``loss(x: (b, d), y: (b,), **options)`` are the
    head's, applied to ``backbone(x): (., f)``. ``predictive(x, samples)`` runs the backbone once
    and lets a stochastic head (one with ``predictive``, e.g. a BNN) draw its ``samples`` weight
    samples on those features; a deterministic head ignores ``samples``. The backbone's weights
    are point estimates: with a Bayesian head only the head's weights have a posterior.

    Args:
        backbone: module ``(b, d) -> (b, f)`` (it reshapes flat rows itself, e.g. to images).
        head: a net with ``loss(features, y)`` and ``forward(features) -> GaussianMixture`` whose
            input width is ``f``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        if not isinstance(head, nn.Module) or not callable(getattr(head, "loss", None)):
            raise TypeError(f"head must be an nn.Module with a loss(x, y) method, got {type(head).__name__}")
        self.backbone = backbone
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        """``x: (b, d) -> (b, f)``."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> GaussianMixture:
        """The head's predictive mixture for ``x: (n, d)``."""
        return self.head(self.features(x))

    def loss(self, x: Tensor, y: Tensor, **options: Any) -> Tensor:
        """The head's loss on ``backbone(x)`` and ``y: (b,)`` (options such as ``n_train`` passed on)."""
        return self.head.loss(self.features(x), y, **options)

    def predictive(self, x: Tensor, samples: int = 100) -> GaussianMixture:
        """Monte Carlo predictive of a stochastic head (the head's own prediction otherwise)."""
        h = self.features(x)
        head_predictive = getattr(self.head, "predictive", None)
        return self.head(h) if head_predictive is None else head_predictive(h, samples=samples)
