"""Uncertainty-aware regression workloads (generated data, no download).

- ``mdn``: mixture density network on the multimodal inverse-sine problem; groups trunk / mixing
  logits / means / scales (K=4), Adam; loss = negative log-likelihood.
- ``bnn``: mean-field variational BNN (Bayes by Backprop, local reparameterisation, one hidden
  layer of 50 units, learned noise) on a 1-D regression; groups posterior means / posterior
  scales / noise (K=3), Adam; loss = negative ELBO per point, validation = predictive NLL.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hidlr.bench.lr.workloads import ADAM_GRID, Task, Workload, register, sampler, split_data

_LOG2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------- MDN
class SmallMDN(nn.Module):
    """Gaussian-mixture density network: x (B, 1) -> (logits, means, scales), each (B, K)."""

    def __init__(self, components: int = 5, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.logits = nn.Linear(hidden, components)
        self.means = nn.Linear(hidden, components)
        self.scales = nn.Linear(hidden, components)
        with torch.no_grad():  # spread the initial component means over the target range
            self.means.bias.copy_(torch.linspace(-1.5, 1.5, components))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.trunk(x)
        return self.logits(z), self.means(z), F.softplus(self.scales(z)) + 1e-3


def mixture_nll(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood of y (B,) under the predicted mixture (log-sum-exp)."""
    x, y = batch
    logits, mu, sd = model(x)
    logp = -0.5 * ((y[:, None] - mu) / sd) ** 2 - sd.log() - 0.5 * _LOG2PI
    return -torch.logsumexp(F.log_softmax(logits, -1) + logp, -1).mean()


def _build_mdn(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n = 2000
    t = torch.rand(n, generator=g)
    x = t + 0.3 * torch.sin(2 * math.pi * t) + 0.05 * torch.randn(n, generator=g)  # inverse problem
    x, y = (x - x.mean()) / x.std(), (t - t.mean()) / t.std()
    tr, va = split_data(n, 500, seed)
    torch.manual_seed(seed)
    model = SmallMDN()
    groups = [{"name": k, "params": list(getattr(model, k).parameters())}
              for k in ("trunk", "logits", "means", "scales")]

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"loss": float(mixture_nll(m, (x[va, None], y[va])))}

    return Task(model, groups, sampler(x[tr, None], y[tr], batch_size=128), mixture_nll, evaluate)


# --------------------------------------------------------------------------------------------- BNN
class BayesLinear(nn.Module):
    """Mean-field Gaussian linear layer with local reparameterisation; (B, in) -> (B, out).

    Posterior: w ~ N(w_mu, softplus(w_rho)^2) elementwise; prior N(0, prior_sd^2).
    """

    def __init__(self, n_in: int, n_out: int, prior_sd: float = 1.0) -> None:
        super().__init__()
        self.w_mu = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.w_rho = nn.Parameter(torch.full((n_out, n_in), -5.0))
        self.b_mu = nn.Parameter(torch.zeros(n_out))
        self.b_rho = nn.Parameter(torch.full((n_out,), -5.0))
        self.prior_sd = prior_sd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_sd, b_sd = F.softplus(self.w_rho), F.softplus(self.b_rho)
        mean = F.linear(x, self.w_mu, self.b_mu)
        var = F.linear(x ** 2, w_sd ** 2, b_sd ** 2)
        return mean + var.sqrt() * torch.randn_like(mean)

    def kl(self) -> torch.Tensor:
        """KL(q || prior), summed over all weights and biases."""
        total = torch.zeros((), dtype=self.w_mu.dtype, device=self.w_mu.device)
        for mu, rho in ((self.w_mu, self.w_rho), (self.b_mu, self.b_rho)):
            sd = F.softplus(rho)
            total = total + (math.log(self.prior_sd) - sd.log()
                             + (sd ** 2 + mu ** 2) / (2 * self.prior_sd ** 2) - 0.5).sum()
        return total


class SmallBNN(nn.Module):
    """One hidden layer of 50 ReLU units, Bayesian weights, learned homoscedastic noise."""

    def __init__(self, n_train: int, hidden: int = 50) -> None:
        super().__init__()
        self.l1, self.l2 = BayesLinear(1, hidden), BayesLinear(hidden, 1)
        self.log_noise = nn.Parameter(torch.tensor(math.log(0.5)))
        self.n_train = n_train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One Monte Carlo sample of the mean prediction, (B, 1) -> (B,)."""
        return self.l2(F.relu(self.l1(x))).squeeze(-1)

    def kl(self) -> torch.Tensor:
        return self.l1.kl() + self.l2.kl()


def _gauss_logp(y: torch.Tensor, mu: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((y - mu) / log_sd.exp()) ** 2 - log_sd - 0.5 * _LOG2PI


def neg_elbo(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Negative ELBO per training point: minibatch NLL mean + KL / n_train."""
    x, y = batch
    return -_gauss_logp(y, model(x), model.log_noise).mean() + model.kl() / model.n_train


def _build_bnn(seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    n = 1000
    x = torch.rand(n, generator=g) * 4 - 2
    y = torch.sin(2 * x) + 0.3 * x ** 2 + 0.2 * torch.randn(n, generator=g)
    y = (y - y.mean()) / y.std()
    tr, va = split_data(n, 300, seed)
    torch.manual_seed(seed)
    model = SmallBNN(n_train=len(tr))
    mus = [p for n_, p in model.named_parameters() if n_.endswith("_mu")]
    rhos = [p for n_, p in model.named_parameters() if n_.endswith("_rho")]
    groups = [{"name": "mean", "params": mus}, {"name": "scale", "params": rhos},
              {"name": "noise", "params": [model.log_noise]}]
    xv, yv = x[va, None], y[va]

    def evaluate(m: nn.Module) -> dict[str, float]:
        # Predictive NLL of the Monte Carlo mixture (32 weight samples, a fixed random stream).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            lp = torch.stack([_gauss_logp(yv, m(xv), m.log_noise) for _ in range(32)])
        return {"loss": float(-(torch.logsumexp(lp, 0) - math.log(32)).mean())}

    return Task(model, groups, sampler(x[tr, None], y[tr], batch_size=64), neg_elbo, evaluate,
                stochastic=True)


register(Workload("mdn", "MDN (5 components) on the inverse-sine problem; trunk / logits / means / "
                  "scales (K=4); Adam; NLL", _build_mdn, "adam", 1e-3, ADAM_GRID, steps=600,
                  quick_steps=150, batch_size=128, target=0.0, ratios={"trunk": 0.3}))
register(Workload("bnn", "mean-field BNN (50 hidden, local reparam., learned noise) on 1-D regression; "
                  "means / scales / noise (K=3); Adam; val = predictive NLL", _build_bnn, "adam", 1e-3,
                  ADAM_GRID, steps=600, quick_steps=150, batch_size=64, target=0.0,
                  ratios={"scale": 10.0, "noise": 10.0}))
