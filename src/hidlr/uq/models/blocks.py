"""Network blocks shared by the nets of :mod:`hidlr.uq.models` (trunks, heads' helpers, losses)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from hidlr.uq.models.checks import activation_module
from hidlr.uq.models.layers import BayesianLinear

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def mlp_trunk(
    in_features: int, hidden: Sequence[int], activation: str | Callable[[], nn.Module], dropout: float = 0.0
) -> nn.Sequential:
    """``Linear -> activation [-> Dropout]`` per hidden width: ``(..., in) -> (..., hidden[-1])``."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), activation_module(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers)


def bayesian_trunk(
    in_features: int, hidden: Sequence[int], activation: str | Callable[[], nn.Module], **layer_options: float | None
) -> nn.ModuleList:
    """``BayesianLinear -> activation`` per hidden width, as a list the nets walk through."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [BayesianLinear(width, h, **layer_options), activation_module(activation)]
        width = h
    return nn.ModuleList(layers)


def spread_quantiles(y_std: Tensor, k: int) -> Tensor:
    """``k`` quantiles of the standardized targets ``(n,)`` at levels ``(j + 1/2) / k``: shape ``(k,)``.

    Used to initialise mixture means so the components start spread over the data. Half-precision
    targets (float16, bfloat16), which ``torch.quantile`` refuses, are ranked in float32.
    """
    work = y_std if y_std.dtype in (torch.float32, torch.float64) else y_std.float()
    levels = (torch.arange(k, dtype=work.dtype, device=work.device) + 0.5) / k
    return torch.quantile(work, levels).to(y_std.dtype)


def gaussian_log_lik(y: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """Elementwise ``log N(y; loc, scale^2)`` (broadcasting)."""
    return -0.5 * ((y - loc) / scale).square() - scale.log() - _LOG_SQRT_2PI


def mixture_collapse_penalty(logits: Tensor) -> Tensor:
    """``KL(mean_batch softmax(logits) || uniform) = log K - H(pbar)``, ``logits: (..., b, K)`` -> ``(...)``.

    Zero when the batch-averaged mixing weights are uniform, ``log K`` when every input puts all
    its weight on the same component. Per-input weights stay free to be peaked: only the average
    over the batch is pulled towards uniform, which keeps components from dying.
    """
    k = logits.shape[-1]
    log_pbar = torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=-2) - math.log(logits.shape[-2])
    return math.log(k) + (log_pbar.exp() * log_pbar).sum(-1)


def posterior_groups(module: nn.Module, exclude: Sequence[nn.Module] = ()) -> tuple[list[Tensor], list[Tensor]]:
    """Posterior means (``*_mu``) and posterior scales (``*_rho``) of every ``BayesianLinear``
    in ``module`` that is not inside one of ``exclude``."""
    skip = {id(p) for m in exclude for p in m.parameters()}
    means, scales = [], []
    for m in module.modules():
        if isinstance(m, BayesianLinear):
            for name, p in m.named_parameters(recurse=False):
                if id(p) in skip:
                    continue
                (means if name.endswith("_mu") else scales).append(p)
    return means, scales
