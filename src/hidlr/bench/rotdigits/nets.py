"""The rotated-digits line-up: one small CNN backbone in front of the library's heads.

Every model is a :class:`~hidlr.uq.models.BackboneNet` (or ``members`` of them) whose head is an
unchanged net of :mod:`hidlr.uq.models` on the CNN's features:

- ``mdn``: :class:`~hidlr.uq.models.MDNNet` with ``COMPONENTS`` components.
- ``bnn``: :class:`~hidlr.uq.models.BNNNet`, heteroscedastic: mean-field Gaussian posterior over
  the two last layers (variational last layers), point-estimate CNN.
- ``deep_ensemble``: ``ENSEMBLE_MEMBERS`` CNN + single-Gaussian heads (``MDNNet`` with one
  component), each trained from its own initialisation and batch order; an equal-weight mixture.
- ``bayesian_mdn``: :class:`~hidlr.uq.models.BayesianMDNNet` (mean-field posterior over the head).

Targets are standardized as ``y / y_scale`` before training (``y_scale``: the prior angle's std).
"""

from __future__ import annotations

from torch import Tensor, nn

from hidlr.uq.models import BackboneNet, BayesianMDNNet, BNNNet, MDNNet
from hidlr.uq.models.blocks import spread_quantiles

MODELS = ("mdn", "bnn", "deep_ensemble", "bayesian_mdn")
LABELS = {
    "mdn": "CNN + MDN",
    "bnn": "CNN + BNN head",
    "deep_ensemble": "deep ensemble (CNN + Gaussian)",
    "bayesian_mdn": "CNN + Bayesian MDN head",
}
STOCHASTIC = {"bnn": 100, "bayesian_mdn": 50}  # Monte Carlo weight samples at prediction
COMPONENTS = 3
ENSEMBLE_MEMBERS = 5
FEATURES = 64
HEAD_HIDDEN = (50,)


class DigitCNN(nn.Module):
    """Flat ``side x side`` images ``(b, side * side)`` -> features ``(b, features)``.

    ``Conv3x3(1 -> c1) -> ReLU -> MaxPool2 -> Conv3x3(c1 -> c2) -> ReLU -> MaxPool2 -> Linear -> ReLU``.
    """

    def __init__(self, side: int, channels: tuple[int, int] = (16, 32), features: int = FEATURES) -> None:
        super().__init__()
        if side < 4:
            raise ValueError(f"side must be at least 4 pixels, got {side}")
        c1, c2 = channels
        self.side = side
        self.out_features = features
        pooled = side // 4
        self.layers = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * pooled * pooled, features),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x: (b, side * side)`` (or ``(b, side, side)``) -> ``(b, features)``."""
        return self.layers(x.reshape(-1, 1, self.side, self.side))


def members(model: str) -> int:
    """How many nets the model trains (the ensemble's members, else 1)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    return ENSEMBLE_MEMBERS if model == "deep_ensemble" else 1


def build(model: str, side: int, y_std: Tensor, n_train: int) -> BackboneNet:
    """One fresh net of ``model`` (one member for the ensemble); ``y_std``: standardized training targets."""
    cnn = DigitCNN(side)
    f = cnn.out_features
    if model == "mdn":
        head = MDNNet(f, COMPONENTS, hidden=HEAD_HIDDEN, init_loc=spread_quantiles(y_std, COMPONENTS).cpu())
    elif model == "deep_ensemble":
        head = MDNNet(f, 1, hidden=HEAD_HIDDEN, init_loc=y_std.mean().reshape(1).cpu())
    elif model == "bnn":
        head = BNNNet(f, n_train, hidden=HEAD_HIDDEN, heteroscedastic=True)
    elif model == "bayesian_mdn":
        head = BayesianMDNNet(
            f, COMPONENTS, n_train, hidden=HEAD_HIDDEN, init_loc=spread_quantiles(y_std, COMPONENTS).cpu()
        )
    else:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    return BackboneNet(cnn, head)
