"""Last-layer Laplace approximation on a heteroscedastic Gaussian net, in closed form.

The net (an :class:`~hidlr.uq.models.mdn.MDNNet` with one component: trunk features ``phi(x)``, a
linear mean head ``mu(x) = w^T [phi(x), 1]`` and a scale head ``sigma(x)``) is trained to its MAP
by the usual fit. The mean head's weights ``w`` (``p = width + 1``) then get a Gaussian posterior:
with ``sigma`` fixed, the negative log-likelihood is quadratic in ``w``, so the Laplace precision is
exact, ``A = alpha I + sum_i f_i f_i^T / sigma_i^2`` (``f_i = [phi(x_i), 1]``), with the prior
precision ``alpha`` chosen by maximising the closed-form evidence of that linear-Gaussian model
over a grid. Prediction: ``samples`` draws of ``w`` from ``N(w_map, A^{-1})``, each a Gaussian
``N(w_s^T f(x), sigma(x)^2)``, as a mixture with ``members = samples``; its epistemic variance
tends to ``f(x)^T A^{-1} f(x)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hidlr.uq.distributions import GaussianMixture
from hidlr.uq.models import checks
from hidlr.uq.models.estimator import Estimator, OptimizerSpec
from hidlr.uq.models.mdn import MDN, MDNNet

#: prior precisions tried for the evidence (standardized units)
ALPHAS = tuple(10.0 ** (k / 4) for k in range(-16, 17))


def features(net: MDNNet, x: Tensor) -> Tensor:
    """``[phi(x), 1]``: the mean head's inputs, ``x: (n, d)`` -> ``(n, p)``."""
    h = net.trunk(x)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1)


def log_evidence(F: Tensor, y: Tensor, noise_var: Tensor, alpha: float) -> float:
    """``log N(y; 0, F F^T / alpha + diag(noise_var))`` by the matrix determinant lemma and Woodbury:
    ``F: (n, p)``, ``y, noise_var: (n,)``, all float64."""
    n, p = F.shape
    Fw = F / noise_var[:, None]
    A = alpha * torch.eye(p, dtype=F.dtype) + F.T @ Fw
    L = torch.linalg.cholesky(A)
    b = Fw.T @ y
    z = torch.cholesky_solve(b[:, None], L)[:, 0]
    quad = float((y * y / noise_var).sum() - b @ z)
    logdet = float(2 * torch.log(torch.diagonal(L)).sum() - p * math.log(alpha) + torch.log(noise_var).sum())
    return -0.5 * (quad + logdet + n * math.log(2 * math.pi))


class LaplaceNet(nn.Module):
    """An :class:`MDNNet` with one component plus a Gaussian posterior over its mean head:
    ``w_map (p,)`` and ``scale_tril (p, p)`` (Cholesky factor of the covariance) as buffers."""

    def __init__(self, net: MDNNet, w_map: Tensor, scale_tril: Tensor, samples: int) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("w_map", w_map)
        self.register_buffer("scale_tril", scale_tril)
        self.samples = samples

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net.loss(x, y)

    def predictive(self, x: Tensor, samples: int | None = None) -> GaussianMixture:
        """``samples`` posterior draws of the mean head for ``x: (n, d)``: mixture ``(n, samples)``."""
        s = self.samples if samples is None else samples
        F = features(self.net, x)
        _, _, scale = self.net.params(x)
        eps = torch.randn(s, self.w_map.shape[0], dtype=F.dtype, device=F.device)
        w = self.w_map + eps @ self.scale_tril.T  # (S, p)
        loc = F @ w.T  # (n, S)
        return GaussianMixture(torch.zeros_like(loc), loc, scale.expand_as(loc), members=s, validate_args=False)

    def forward(self, x: Tensor) -> GaussianMixture:
        return self.predictive(x)


class LastLayerLaplace(Estimator):
    """A heteroscedastic Gaussian net with a last-layer Laplace posterior (see the module docstring).

    Args:
        prior_precision: ``alpha`` of the mean head's Gaussian prior; ``None`` picks it by evidence.
        samples: posterior draws at prediction.
        The others: see :class:`~hidlr.uq.models.estimator.Estimator` (trains with Adam by default;
        ``variance_scaling`` is off by default: the predictive variance is the posterior's).
    Fitted: ``prior_precision_``.
    """

    stochastic = True
    default_optimizer = "adam"

    def __init__(
        self,
        *,
        prior_precision: float | None = None,
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
        variance_scaling: bool = False,
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
        self.prior_precision = prior_precision
        self.samples = samples

    def _check_model_params(self) -> None:
        if self.prior_precision is not None:
            checks.check_float("prior_precision", self.prior_precision)

    def build(self, in_features: int, y_std: Tensor, dataset_size: int) -> MDNNet:
        return MDN(1, hidden=self.hidden, activation=self.activation).build(in_features, y_std, dataset_size)

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        return MDN.param_groups(self, module)

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LastLayerLaplace:
        """Train the net (as :meth:`Estimator.fit`), then fit the last-layer posterior on all rows."""
        previous = dict(self.__dict__)
        try:
            super().fit(X, y, **kwargs)
            self._fit_posterior(X, y)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)  # a failed fit leaves a fitted model as it was
            raise
        return self

    def _fit_posterior(self, X: Any, y: Any) -> None:
        scaled = self.module_
        net: MDNNet = scaled.net
        _, yt, _, _ = checks.check_xy(X, y)
        with torch.no_grad():
            xs = scaled.standardize(checks.check_x(X)[0])
            F = features(net, xs).double()
            _, _, scale = net.params(xs)
            noise = scale[:, 0].double() ** 2
            ys = scaled.standardize_y(yt).double()
            alpha = self.prior_precision
            if alpha is None:
                alpha = max(ALPHAS, key=lambda a: log_evidence(F.cpu(), ys.cpu(), noise.cpu(), a))
            A = alpha * torch.eye(F.shape[1], dtype=F.dtype, device=F.device) + (F / noise[:, None]).T @ F
            cov = torch.cholesky_inverse(torch.linalg.cholesky(A))
            w_map = torch.cat([net.loc.weight[0], net.loc.bias]).to(F)
            tril = torch.linalg.cholesky(cov).to(xs.dtype)
        self.prior_precision_ = float(alpha)
        self.module_.net = LaplaceNet(net, w_map.to(xs.dtype), tril, checks.check_int("samples", self.samples))
