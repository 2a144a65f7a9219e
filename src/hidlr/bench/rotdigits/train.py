"""Training one rotated-digits model with the library's loop: minibatches from a seed, Adam, and
early stopping on a validation part held out by source image (so no handwriting is on both sides).

The loop, the early stopping and the seeding are :mod:`hidlr.uq.models.training`'s; this module
only lays out the data (flat images, standardized targets) and predicts in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hidlr.bench.rotdigits import nets
from hidlr.uq.data.rotdigits import RotatedDigits
from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import BackboneNet
from hidlr.uq.models.training import EarlyStopping, FitPlan, fused_adam, seeded, train_epochs

VALIDATION_SAMPLES = 20  # Monte Carlo weight samples of a stochastic head's validation NLL
PREDICT_SEED_OFFSET = 104729


@dataclass(frozen=True)
class TrainOptions:
    """Epoch cap, early-stopping patience, minibatch size, Adam's rate, validation share of sources."""

    epochs: int = 40
    patience: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    validation_fraction: float = 0.1


@dataclass
class Fitted:
    """A trained model: its nets (one per ensemble member), target scale, epochs run and best epochs."""

    model: str
    nets: list[BackboneNet]
    y_scale: float
    epochs_run: list[int]
    best_epochs: list[int]
    seed: int

    def predict(self, data: RotatedDigits, device: torch.device) -> GaussianMixture:
        """Predictive mixture over the angle (degrees, float64) for every image of ``data``: ``(n, K)``."""
        x = data.flat.to(device=device, dtype=torch.float32)
        samples = nets.STOCHASTIC.get(self.model)
        parts = []
        with torch.no_grad(), seeded(self.seed + PREDICT_SEED_OFFSET, device):
            for net in self.nets:
                net.eval()
                dist = net(x) if samples is None else _chunked(net, x, samples)
                parts.append(dist)
        dist = parts[0] if len(parts) == 1 else GaussianMixture.concat(parts)
        dist = GaussianMixture(
            dist.logits.double().cpu(),
            dist.loc.double().cpu(),
            dist.scale.double().cpu(),
            members=dist.members,
            validate_args=False,
        )
        return dist.to_units(0.0, self.y_scale)


def _chunked(net: BackboneNet, x: Tensor, samples: int, rows: int = 512) -> GaussianMixture:
    return GaussianMixture.cat_rows(
        [net.predictive(x[i : i + rows], samples=samples) for i in range(0, x.shape[0], rows)]
    )


def validation_rows(data: RotatedDigits, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Training and validation row indices, splitting ``data``'s source images at random (``seed``)."""
    sources = torch.unique(data.source)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(sources.shape[0]))
    n_val = max(1, int(round(fraction * sources.shape[0])))
    is_val = torch.isin(data.source, sources[perm[:n_val]])
    return torch.nonzero(~is_val).reshape(-1), torch.nonzero(is_val).reshape(-1)


def fit(model: str, data: RotatedDigits, seed: int, options: TrainOptions, device: torch.device) -> Fitted:
    """Train ``model`` (every member of an ensemble, member ``i`` from seed ``seed + 1000 i``)."""
    train_rows, val_rows = validation_rows(data, options.validation_fraction, seed)
    y_scale = data.half_range / np.sqrt(3.0)  # standard deviation of the uniform prior angle
    x = data.flat.to(device=device, dtype=torch.float32)
    y = (data.y / y_scale).to(device=device, dtype=torch.float32)
    xs, ys = x[train_rows.to(device)], y[train_rows.to(device)]
    xv, yv = x[val_rows.to(device)], y[val_rows.to(device)]
    trained, run, best = [], [], []
    for m in range(nets.members(model)):
        net, epochs_run, best_epoch = _fit_member(
            model, data.images.shape[-1], (xs, ys), (xv, yv), seed + 1000 * m, options
        )
        trained.append(net)
        run.append(epochs_run)
        best.append(best_epoch)
    return Fitted(model, trained, float(y_scale), run, best, seed)


def _fit_member(
    model: str, side: int, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], seed: int, options: TrainOptions
) -> tuple[BackboneNet, int, int]:
    """One net trained from ``seed`` with early stopping on ``val``: the net (best epoch's weights),
    epochs run, best epoch. ``train``, ``val``: flat images ``(n, side * side)`` and standardized targets ``(n,)``."""
    (xs, ys), (xv, yv) = train, val
    device = xs.device
    samples = VALIDATION_SAMPLES if model in nets.STOCHASTIC else None
    with seeded(seed, device):
        net = nets.build(model, side, ys, xs.shape[0]).to(device)
    plan = FitPlan(xs, ys, options.epochs, min(options.batch_size, xs.shape[0]), 256, options.lr, None)
    stopper = EarlyStopping(options.patience)
    epochs_run = 0

    def after_epoch(epoch: int, loss: Tensor) -> str:
        nonlocal epochs_run
        net.eval()
        with torch.no_grad(), seeded(seed + PREDICT_SEED_OFFSET, device):
            dist = net(xv) if samples is None else net.predictive(xv, samples=samples)
            val_nll = float(-dist.log_prob(yv).mean())
        net.train()
        stopper.update(epoch + 1, val_nll if np.isfinite(val_nll) else np.inf, net)
        epochs_run = epoch + 1
        return f"val nll {val_nll:.3f}"

    with seeded(seed, device):
        opt = fused_adam([{"params": list(net.parameters())}], options.lr)
        train_epochs(
            net, opt, plan, [seed], stochastic=samples is not None, after_epoch=after_epoch, stop=lambda: stopper.stop
        )
    stopper.restore(net)
    net.eval()
    return net, epochs_run, stopper.best_epoch
