"""Methods of the learning-rate benchmark: the base optimizer (grid and default), learning-rate-free
baselines at their published defaults, GeN, a fixed-ratio differential rate and Hi-DLR (+ ablations).

Third-party optimizers are imported lazily: a missing package makes the method *unavailable*
(reported as skipped), never a crash.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hidlr.bench.lr.workloads import Task, Workload


class Unavailable(Exception):
    """The method cannot run on this workload or in this environment (the message says why)."""


@dataclass
class Setup:
    """A method instantiated on a task.

    Attributes:
        optimizer: the optimizer to step.
        probe: for Hi-DLR methods, which batch the probe closure uses: ``"same"`` (the training
            batch) or ``"separate"`` (another batch drawn from the workload); None otherwise.
        eval_model: the model to validate (an iterate average), or None for the trained model.
        after_step: called after each optimizer step (e.g. to update an iterate average).
        before_eval / after_eval: called around each validation (e.g. Schedule-Free's eval/train).
        lr: the nominal base learning rate, where the method has one.
    """

    optimizer: torch.optim.Optimizer
    probe: str | None = None
    eval_model: nn.Module | None = None
    after_step: Callable[[], None] | None = None
    before_eval: Callable[[], None] | None = None
    after_eval: Callable[[], None] | None = None
    lr: float | None = None


@dataclass(frozen=True)
class Method:
    """A named method. ``family``: "grid" (one point of the sweep), "single" (one run, no tuning)
    or "ablation" (a Hi-DLR variant)."""

    name: str
    family: str
    description: str
    build: Callable[[Workload, Task], Setup]
    hidlr_options: dict[str, Any] = field(default_factory=dict)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def base_optimizer(wl: Workload, groups: list[dict[str, Any]], lr: float,
                   ratios: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """The workload's base optimizer over ``groups`` (copied), each at ``lr * ratios[name]``."""
    ratios = ratios or {}
    gs = [dict(g, params=list(g["params"]), lr=lr * ratios.get(g["name"], 1.0)) for g in groups]
    if wl.base == "adam":
        return torch.optim.Adam(gs, lr=lr)
    if wl.base == "sgd":
        return torch.optim.SGD(gs, lr=lr, momentum=0.9)
    raise ValueError(f"workload {wl.name!r}: unknown base optimizer {wl.base!r}")


def _import(module: str, attr: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"{module}.{attr} is not available ({exc.__class__.__name__}: {exc})") from None


def _grid(i: int) -> Callable[[Workload, Task], Setup]:
    def build(wl: Workload, task: Task) -> Setup:
        if i >= len(wl.grid):
            raise Unavailable(f"grid has {len(wl.grid)} points")
        return Setup(base_optimizer(wl, task.groups, wl.grid[i]), lr=wl.grid[i])
    return build


def _default(wl: Workload, task: Task) -> Setup:
    return Setup(base_optimizer(wl, task.groups, wl.default_lr), lr=wl.default_lr)


def _fixed_ratio(wl: Workload, task: Task) -> Setup:
    if not wl.ratios:
        raise Unavailable("the workload has no conventional fixed ratio between its groups")
    return Setup(base_optimizer(wl, task.groups, wl.default_lr, wl.ratios), lr=wl.default_lr)


def _prodigy(wl: Workload, task: Task) -> Setup:
    return Setup(_import("prodigyopt", "Prodigy")(trainable(task.model), lr=1.0))


def _dadapt(wl: Workload, task: Task) -> Setup:
    return Setup(_import("dadaptation", "DAdaptAdam")(trainable(task.model), lr=1.0))


def _schedulefree(wl: Workload, task: Task) -> Setup:
    opt = _import("schedulefree", "AdamWScheduleFree")(trainable(task.model))  # lr=0.0025 by default
    opt.train()
    return Setup(opt, before_eval=opt.eval, after_eval=opt.train)


def _ldog(wl: Workload, task: Task) -> Setup:
    ldog = _import("dog", "LDoG")
    averager = _import("dog", "PolynomialDecayAverager")
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in task.model.modules())
    # The package's advice: reps_rel 1e-6, or 1e-4 with batch normalisation; iterate averaging.
    opt = ldog(trainable(task.model), reps_rel=1e-4 if has_bn else 1e-6)
    avg = averager(task.model)
    return Setup(opt, eval_model=avg.averaged_model, after_step=avg.step)


def _hidlr(options: dict[str, Any], probe: str = "same", one_group: bool = False,
           max_k: int | None = None) -> Callable[[Workload, Task], Setup]:
    def build(wl: Workload, task: Task) -> Setup:
        groups = ([{"name": "all", "params": trainable(task.model)}] if one_group else task.groups)
        if max_k is not None and len(groups) > max_k:
            raise Unavailable(f"K={len(groups)} groups > {max_k}")
        hidlr = _import("hidlr", "HiDLR")
        return Setup(hidlr(base_optimizer(wl, groups, wl.default_lr), **options), probe=probe,
                     lr=wl.default_lr)
    return build


FULL_MAX_K = 6


def _make_registry() -> dict[str, Method]:
    ms = [Method(f"grid{i}", "grid", f"base optimizer at grid point {i} of 7", _grid(i)) for i in range(7)]
    ms += [
        Method("default", "single", "base optimizer at its common default rate", _default),
        Method("prodigy", "single", "Prodigy (prodigyopt), lr=1.0", _prodigy),
        Method("dadapt-adam", "single", "D-Adaptation Adam (dadaptation), lr=1.0", _dadapt),
        Method("sf-adamw", "single", "Schedule-Free AdamW (schedulefree), package defaults", _schedulefree),
        Method("ldog", "single", "L-DoG (dog-optimizer) with polynomial-decay iterate averaging", _ldog),
        Method("fixed-ratio", "single", "base default rate x a fixed per-group ratio", _fixed_ratio),
        Method("gen", "single", "GeN: Hi-DLR with all parameters in one group", _hidlr({}, one_group=True)),
        Method("hidlr-diag", "single", "Hi-DLR, diagonal mode, engine defaults", _hidlr({"mode": "diag"}),
               {"mode": "diag"}),
        Method("hidlr-full", "single", f"Hi-DLR, full mode (K <= {FULL_MAX_K}), engine defaults",
               _hidlr({"mode": "full"}, max_k=FULL_MAX_K), {"mode": "full"}),
    ]
    ablations: list[tuple[str, str, dict[str, Any], str]] = [
        ("hidlr-probe-sep", "probe on a separate batch", {"mode": "diag"}, "separate"),
        ("hidlr-every1", "refresh every step", {"mode": "diag", "every": 1}, "same"),
        ("hidlr-every4", "refresh every 4 steps", {"mode": "diag", "every": 4}, "same"),
        ("hidlr-every16", "refresh every 16 steps", {"mode": "diag", "every": 16}, "same"),
        ("hidlr-no-ema", "no smoothing (ema=0)", {"mode": "diag", "ema": 0.0}, "same"),
        # Stricter safeguards (GeN's fit threshold, the paper's smoothing, a narrower clip, the
        # full momentum correction): candidates where the defaults misbehave.
        ("hidlr-r2-0.99", "fits accepted only with R^2 >= 0.99", {"mode": "diag", "min_r2": 0.99}, "same"),
        ("hidlr-ema-0.9", "smoothing ema=0.9", {"mode": "diag", "ema": 0.9}, "same"),
        ("hidlr-clip-1.25", "rate change per refresh clipped to [0.8x, 1.25x]",
         {"mode": "diag", "clip": (0.8, 1.25)}, "same"),
        ("hidlr-horizon1", "full momentum correction (horizon=1)", {"mode": "diag", "horizon": 1.0}, "same"),
    ]
    ms += [Method(n, "ablation", f"Hi-DLR diag, {d}", _hidlr(o, probe=p), o) for n, d, o, p in ablations]
    return {m.name: m for m in ms}


METHODS: dict[str, Method] = _make_registry()
# In quick mode grid2 is the default rate (the same run, reused), so the sweep costs 2 extra runs.
QUICK_METHODS = ["default", "grid2", "grid3", "grid4", "prodigy", "gen", "hidlr-diag"]


def get(names: list[str] | None = None) -> list[Method]:
    """The methods named (all when None); an unknown name is an error."""
    if names is None:
        return list(METHODS.values())
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    return [METHODS[n] for n in names]
