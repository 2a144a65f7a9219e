"""An encoder with a distribution head: token text -> predictive Gaussian mixture over a rating.

The encoder's last hidden states are mean-pooled over the token's wordpieces and a small MLP head
outputs the mixture's logits, means and scales (``components=1``: a Gaussian head). Training
maximises the probability of each integer rating's unit interval (the same likelihood the scores
use), so no component can win by shrinking onto an integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture

_MIN_MASS = 1e-12


@dataclass
class Encoded:
    """Tokenised text: ``ids`` and ``mask`` of shape ``(n, L)`` (right-padded)."""

    ids: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def take(self, index: Tensor) -> Encoded:
        """Rows ``index``, trimmed to their longest sequence (short batches cost less)."""
        mask = self.mask[index]
        length = int(mask.sum(1).max())
        return Encoded(self.ids[index][:, :length], mask[:, :length])

    def to(self, device: torch.device | str) -> Encoded:
        return Encoded(self.ids.to(device), self.mask.to(device))


def encode(tokenizer, texts: list[str] | tuple[str, ...]) -> Encoded:
    """Tokenise ``texts`` with a Hugging Face tokenizer into one padded batch."""
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    return Encoded(enc["input_ids"], enc["attention_mask"])


class DistributionHead(nn.Module):
    """``(n, width) -> (logits, loc, scale)``, each ``(n, K)``, in standardized rating units."""

    def __init__(self, width: int, components: int, hidden: int = 128, scale_floor: float = 0.05) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.components, self.scale_floor = components, scale_floor
        self.hidden = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, 3 * components)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            bias = self.out.bias.view(3, components)
            bias[0].zero_()
            bias[1].copy_(torch.linspace(-1.0, 1.0, components) if components > 1 else torch.zeros(1))
            bias[2].fill_(math.log(math.expm1(max(1.0 / math.sqrt(components) - scale_floor, 1e-3))))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, loc, raw = self.out(F.gelu(self.hidden(h))).chunk(3, dim=-1)
        return logits, loc, F.softplus(raw) + self.scale_floor


class TokenDistributionModel(nn.Module):
    """Encoder + mean pooling + :class:`DistributionHead`; predicts in rating units.

    Args:
        encoder: a ``transformers`` encoder (``encoder(input_ids=, attention_mask=).last_hidden_state``).
        components: mixture components (1 = Gaussian head).
        center, spread: ratings are standardized as ``(r - center) / spread`` inside the model
            (buffers: they move with the model and are not trained).
    """

    def __init__(
        self, encoder: nn.Module, components: int = 3, center: float = 0.0, spread: float = 2.0, hidden: int = 128
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = DistributionHead(encoder.config.hidden_size, components, hidden)
        self.register_buffer("center", torch.tensor(float(center)))
        self.register_buffer("spread", torch.tensor(float(spread)))

    def features(self, x: Encoded) -> Tensor:
        """Mean-pooled last hidden states ``(n, width)``."""
        h = self.encoder(input_ids=x.ids, attention_mask=x.mask).last_hidden_state
        m = x.mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, x: Encoded) -> GaussianMixture:
        """Predictive mixture over a rating, in rating units, for ``n`` tokens."""
        logits, loc, scale = self.head(self.features(x))
        return GaussianMixture(logits, loc * self.spread + self.center, scale * self.spread, validate_args=False)

    def loss(self, x: Encoded, ratings: Tensor) -> Tensor:
        """Mean negative log-probability of each rating's unit interval; ``ratings: (n, R)``."""
        dist = self(x)
        r = ratings.to(dist.loc.dtype).T  # (R, n)
        mass = dist.cdf(r + 0.5) - dist.cdf(r - 0.5)
        return -mass.clamp_min(_MIN_MASS).log().mean()
