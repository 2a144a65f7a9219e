"""Workload specification and registry for the learning-rate benchmark.

A :class:`Workload` is a recipe: from a seed it builds a :class:`Task` (model, data, param grouping,
loss and validation metric). The grouping is where Hi-DLR's groups come from; every method of the
benchmark sees the same model, data stream and step budget.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hidlr import groups as groups_mod

Batch = Any


@dataclass
class Task:
    """One built instance of a workload (model, data and grouping for one seed).

    Attributes:
        model: the network to train.
        groups: param groups ``[{"name": str, "params": [Tensor, ...]}, ...]``: a partition of the
            model's trainable parameters; each group is one Hi-DLR group.
        batch: draws a training batch from a ``torch.Generator`` (the data stream of the run).
        loss: ``loss(model, batch) -> scalar Tensor``, the training objective on a batch.
        evaluate: ``evaluate(model) -> {"loss": float, "acc": float?}`` on the validation set
            (called under ``torch.no_grad`` with the model in eval mode).
        stochastic: the loss draws random numbers itself (e.g. weight noise of a variational
            network); probes then reuse one random stream per step (common random numbers).
    """

    model: nn.Module
    groups: list[dict[str, Any]]
    batch: Callable[[torch.Generator], Batch]
    loss: Callable[[nn.Module, Batch], torch.Tensor]
    evaluate: Callable[[nn.Module], dict[str, float]]
    stochastic: bool = False


@dataclass(frozen=True)
class Workload:
    """A benchmark workload: how to build it, its base optimizer and its budget.

    Attributes:
        name: short identifier.
        description: one line for the report.
        build: ``build(seed) -> Task``.
        base: base optimizer, ``"adam"`` or ``"sgd"`` (SGD with momentum 0.9).
        default_lr: the base optimizer's common default rate (Adam 1e-3); also Hi-DLR's start rate.
        grid: the 7-point log-spaced learning-rate grid of the tuned baseline.
        steps: step budget (full mode); ``quick_steps`` in quick mode.
        batch_size: training batch size.
        target: validation loss that counts as reached (steps and time to target).
        ratios: fixed-ratio differential rate, group name -> multiplier of ``default_lr``.
        has_acc: the validation metric includes accuracy.
    """

    name: str
    description: str
    build: Callable[[int], Task]
    base: str
    default_lr: float
    grid: tuple[float, ...]
    steps: int
    quick_steps: int
    batch_size: int
    target: float
    ratios: dict[str, float] = field(default_factory=dict)
    has_acc: bool = False


def log_grid(lo_exp: float, hi_exp: float, n: int = 7) -> tuple[float, ...]:
    """``n`` log-spaced rates from 10**lo_exp to 10**hi_exp, rounded to 3 significant digits."""
    return tuple(float(f"{10 ** (lo_exp + (hi_exp - lo_exp) * i / (n - 1)):.3g}") for i in range(n))


ADAM_GRID = log_grid(-4, -1)  # 1e-4 .. 1e-1; the default 1e-3 is point 2
SGD_GRID = log_grid(-3, 0)  # 1e-3 .. 1; the default 1e-2 is point 2

_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add a workload to the registry (names are unique)."""
    if workload.name in _REGISTRY:
        raise ValueError(f"workload {workload.name!r} is already registered")
    if len(workload.grid) < 2:
        raise ValueError(f"workload {workload.name!r}: the grid needs at least two points")
    _REGISTRY[workload.name] = workload
    return workload


def registered(name: str) -> Workload:
    """A workload registered so far (for building variants of it); an unknown name is an error."""
    if name not in _REGISTRY:
        raise ValueError(f"no workload {name!r} is registered yet; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def all_workloads() -> dict[str, Workload]:
    """All registered workloads by name, in registration order."""
    _load()
    return dict(_REGISTRY)


def get(names: list[str] | None = None) -> list[Workload]:
    """The workloads named (all when ``names`` is None); an unknown name is an error."""
    reg = all_workloads()
    if names is None:
        return list(reg.values())
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; known: {sorted(reg)}")
    return [reg[n] for n in names]


# Importing a module registers its workloads; this order is the order of the reports.
WORKLOAD_MODULES = ("wl_digits", "wl_regression", "wl_synthetic", "wl_vision", "wl_language", "wl_finetune", "wl_long")


def _load() -> None:
    for module in WORKLOAD_MODULES:
        importlib.import_module(f"hidlr.bench.lr.{module}")


def check_partition(model: nn.Module, groups: list[dict[str, Any]]) -> None:
    """:func:`hidlr.groups.check_partition`, and stricter for a workload: every group has a unique
    name and at least one parameter, and none holds a frozen parameter. Raises ValueError."""
    names = [g.get("name") for g in groups]
    if len(set(names)) != len(names) or any(n is None for n in names):
        raise ValueError(f"group names must be present and unique, got {names}")
    for g in groups:
        if not g["params"]:
            raise ValueError(f"group {g['name']!r} is empty")
        if any(not p.requires_grad for p in g["params"]):
            raise ValueError(f"group {g['name']!r} holds a frozen parameter")
    groups_mod.check_partition(model, groups)


def split_data(n: int, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into (train, val) index tensors."""
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in (0, {n}), got {n_val}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]


def sampler(*tensors: torch.Tensor, batch_size: int) -> Callable[[torch.Generator], tuple]:
    """A batch drawer: ``batch_size`` rows sampled with replacement from the given tensors."""
    n = tensors[0].shape[0]
    if n == 0:
        raise ValueError("cannot sample from empty data")

    def draw(gen: torch.Generator) -> tuple:
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        return tuple(t[idx] for t in tensors)

    return draw


def classification_eval(x: torch.Tensor, y: torch.Tensor) -> Callable[[nn.Module], dict[str, float]]:
    """Validation of a classifier ``model(x) -> logits (n, C)``: cross-entropy and accuracy."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        logits = model(x)
        return {
            "loss": float(nn.functional.cross_entropy(logits, y)),
            "acc": float((logits.argmax(-1) == y).float().mean()),
        }

    return evaluate


def ce_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of ``model(x)`` (logits, shape (B, C)) against labels ``y`` (B,)."""
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def by_predicate(
    model: nn.Module, rules: list[tuple[str, Callable[[str, nn.Parameter], bool]]], rest: str
) -> list[dict[str, Any]]:
    """Group trainable parameters by the first matching ``(name, predicate(param_name, p))`` rule;
    unmatched parameters go to the group ``rest``. Empty groups are dropped."""
    buckets: dict[str, list[nn.Parameter]] = {name: [] for name, _ in rules}
    buckets[rest] = []
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for gname, pred in rules:
            if pred(pname, p):
                buckets[gname].append(p)
                break
        else:
            buckets[rest].append(p)
    return [{"name": k, "params": v} for k, v in buckets.items() if v]
