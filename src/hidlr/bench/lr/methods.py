"""Methods of the learning-rate benchmark: the base optimizer (grid, default, and default with linear
warm-up and cosine decay), learning-rate-free baselines at their published defaults, GeN (our
one-group rule and the official ``gen-optim`` package), a fixed-ratio differential rate and Hi-DLR
(+ ablations).

Methods that start from a rate (Hi-DLR, GeN) also exist as start-rate variants,
``<method>@lr0=<rate>`` (family ``"start-rate"``): the same method started from another rate.

Third-party optimizers are imported lazily: a missing package makes the method *unavailable*
(reported as skipped), never a crash.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
class RunSpec:
    """What a method needs to know about the run: its length, its seed and the start rate
    (``lr0`` None: the workload's default rate)."""

    steps: int
    seed: int
    lr0: float | None = None


Builder = Callable[[Workload, Task, RunSpec], Setup]


@dataclass(frozen=True)
class Method:
    """A named method.

    Attributes:
        family: "grid" (one point of the sweep), "single" (one run, no tuning), "ablation" (a
            Hi-DLR variant) or "start-rate" (a method started from another rate than the default).
        build: ``build(workload, task, spec) -> Setup``; ``spec.lr0`` None means the workload's
            default rate (only methods with ``takes_lr0`` receive another).
        takes_lr0: the method starts from a rate that it then adapts (it has start-rate variants).
        lr0: the start rate of a start-rate variant (None: the workload's default).
        varies: the method a start-rate variant is a variant of.
    """

    name: str
    family: str
    description: str
    build: Builder
    hidlr_options: dict[str, Any] = field(default_factory=dict)
    takes_lr0: bool = False
    lr0: float | None = None
    varies: str | None = None

    def setup(self, wl: Workload, task: Task, steps: int, seed: int) -> Setup:
        """The method instantiated on ``task`` for a run of ``steps`` steps with seed ``seed``."""
        return self.build(wl, task, RunSpec(steps, seed, self.lr0))


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def base_optimizer(
    wl: Workload, groups: list[dict[str, Any]], lr: float, ratios: dict[str, float] | None = None
) -> torch.optim.Optimizer:
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


def _grid(i: int) -> Builder:
    def build(wl: Workload, task: Task, spec: RunSpec) -> Setup:
        if i >= len(wl.grid):
            raise Unavailable(f"grid has {len(wl.grid)} points")
        return Setup(base_optimizer(wl, task.groups, wl.grid[i]), lr=wl.grid[i])

    return build


def _default(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    return Setup(base_optimizer(wl, task.groups, wl.default_lr), lr=wl.default_lr)


def _fixed_ratio(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    if not wl.ratios:
        raise Unavailable("the workload has no conventional fixed ratio between its groups")
    return Setup(base_optimizer(wl, task.groups, wl.default_lr, wl.ratios), lr=wl.default_lr)


def _prodigy(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    return Setup(_import("prodigyopt", "Prodigy")(trainable(task.model), lr=1.0))


def _dadapt(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    return Setup(_import("dadaptation", "DAdaptAdam")(trainable(task.model), lr=1.0))


def _schedulefree(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    opt = _import("schedulefree", "AdamWScheduleFree")(trainable(task.model))  # lr=0.0025 by default
    opt.train()
    return Setup(opt, before_eval=opt.eval, after_eval=opt.train)


def _ldog(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    ldog = _import("dog", "LDoG")
    averager = _import("dog", "PolynomialDecayAverager")
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in task.model.modules())
    # The package's advice: reps_rel 1e-6, or 1e-4 with batch normalisation; iterate averaging.
    opt = ldog(trainable(task.model), reps_rel=1e-4 if has_bn else 1e-6)
    avg = averager(task.model)
    return Setup(opt, eval_model=avg.averaged_model, after_step=avg.step)


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Rate multiplier after ``step`` completed steps of ``steps``: linear warm-up from 0 over
    ``warmup`` steps, then cosine decay to 0 (as ``transformers.get_cosine_schedule_with_warmup``)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


WARMUP_FRACTION = 0.05


def _warmup_cosine(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    opt = base_optimizer(wl, task.groups, wl.default_lr)
    warmup = round(WARMUP_FRACTION * spec.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, spec.steps, warmup))
    return Setup(opt, after_step=sched.step, lr=wl.default_lr)


def _gen_optim(wl: Workload, task: Task, spec: RunSpec) -> Setup:
    from hidlr.bench.lr.runner import frozen_norm_stats  # runner imports this module

    stepper_cls = _import("hidlr.bench.lr.published_gen", "GenOptimStepper")
    _import("GeN", "lr_parabola")  # Unavailable when the package is missing
    lr = wl.default_lr if spec.lr0 is None else spec.lr0
    draw_gen = torch.Generator().manual_seed(spec.seed * 7919 + 3)  # GeN's own stream of fresh batches
    opt = stepper_cls(
        task.model,
        base_optimizer(wl, task.groups, lr),
        task.loss,
        lambda: task.batch(draw_gen),
        guard=lambda: frozen_norm_stats(task.model),
    )
    return Setup(opt, lr=lr)


def _hidlr(
    options: dict[str, Any],
    probe: str = "separate",
    one_group: bool = False,
    max_k: int | None = None,
    budget: bool = True,
) -> Builder:
    """Hi-DLR (or, ``one_group``, GeN) with ``options``; ``budget``: told the run's step budget
    (``total_steps``), as the warm-up-cosine baseline is."""

    def build(wl: Workload, task: Task, spec: RunSpec) -> Setup:
        groups = [{"name": "all", "params": trainable(task.model)}] if one_group else task.groups
        if max_k is not None and len(groups) > max_k:
            raise Unavailable(f"K={len(groups)} groups > {max_k}")
        hidlr = _import("hidlr", "HiDLR")
        lr = wl.default_lr if spec.lr0 is None else spec.lr0
        opts = {"total_steps": spec.steps, **options} if budget else options
        return Setup(hidlr(base_optimizer(wl, groups, lr), **opts), probe=probe, lr=lr)

    return build


FULL_MAX_K = 6


def _make_registry() -> dict[str, Method]:
    ms = [Method(f"grid{i}", "grid", f"base optimizer at grid point {i} of 7", _grid(i)) for i in range(7)]
    ms += [
        Method("default", "single", "base optimizer at its common default rate", _default),
        Method(
            "default-wcos",
            "single",
            "base optimizer at its default rate, linear warm-up over the first "
            f"{WARMUP_FRACTION:.0%} of the steps, cosine decay to 0",
            _warmup_cosine,
        ),
        Method("prodigy", "single", "Prodigy (prodigyopt), lr=1.0", _prodigy),
        Method("dadapt-adam", "single", "D-Adaptation Adam (dadaptation), lr=1.0", _dadapt),
        Method("sf-adamw", "single", "Schedule-Free AdamW (schedulefree), package defaults", _schedulefree),
        Method("ldog", "single", "L-DoG (dog-optimizer) with polynomial-decay iterate averaging", _ldog),
        Method("fixed-ratio", "single", "base default rate x a fixed per-group ratio", _fixed_ratio),
        Method(
            "gen-optim",
            "single",
            "official GeN package (gen-optim): lr_parabola at its defaults every "
            "4 steps on the base optimizer, started at the default rate",
            _gen_optim,
            takes_lr0=True,
        ),
        Method(
            "gen",
            "single",
            "GeN: Hi-DLR with all parameters in one group, probing one more training batch, given the step budget",
            _hidlr({}, one_group=True),
            takes_lr0=True,
        ),
        Method(
            "hidlr-diag",
            "single",
            "Hi-DLR, diagonal mode, engine defaults, probing one more training batch, given the step budget "
            "(total_steps)",
            _hidlr({"mode": "diag"}),
            {"mode": "diag"},
            takes_lr0=True,
        ),
        Method(
            "hidlr-full",
            "single",
            f"Hi-DLR, full mode (K <= {FULL_MAX_K}), engine defaults, probing one more training batch, given "
            "the step budget",
            _hidlr({"mode": "full"}, max_k=FULL_MAX_K),
            {"mode": "full"},
            takes_lr0=True,
        ),
    ]
    ablations: list[tuple[str, str, dict[str, Any], str]] = [
        ("hidlr-probe-same", "probing the gradient's own batch", {"mode": "diag"}, "same"),
        ("hidlr-every1", "refresh every step", {"mode": "diag", "every": 1}, "separate"),
        ("hidlr-every4", "refresh every 4 steps", {"mode": "diag", "every": 4}, "separate"),
        ("hidlr-every16", "refresh every 16 steps", {"mode": "diag", "every": 16}, "separate"),
        ("hidlr-no-ema", "no smoothing (ema=0)", {"mode": "diag", "ema": 0.0}, "separate"),
        # Stricter safeguards (GeN's fit threshold, the paper's smoothing, a narrower clip, the
        # full momentum correction): candidates where the defaults misbehave.
        ("hidlr-r2-0.99", "fits accepted only with R^2 >= 0.99", {"mode": "diag", "min_r2": 0.99}, "separate"),
        ("hidlr-ema-0.9", "smoothing ema=0.9", {"mode": "diag", "ema": 0.9}, "separate"),
        (
            "hidlr-clip-1.25",
            "rate change per refresh clipped to [0.8x, 1.25x]",
            {"mode": "diag", "clip": (0.8, 1.25)},
            "separate",
        ),
        ("hidlr-horizon1", "full momentum correction (horizon=1)", {"mode": "diag", "horizon": 1.0}, "separate"),
    ]
    ms += [
        Method(n, "ablation", f"Hi-DLR diag, {d}", _hidlr(o, probe=p), o, takes_lr0=True) for n, d, o, p in ablations
    ]
    ms.append(
        Method(
            "hidlr-no-budget",
            "ablation",
            "Hi-DLR diag not told the step budget (total_steps=None: rates may grow throughout)",
            _hidlr({"mode": "diag"}, budget=False),
            {"mode": "diag", "total_steps": None},
            takes_lr0=True,
        )
    )
    return {m.name: m for m in ms}


METHODS: dict[str, Method] = _make_registry()
# In quick mode grid2 is the default rate (the same run, reused), so the sweep costs 2 extra runs.
QUICK_METHODS = ["default", "grid2", "grid3", "grid4", "prodigy", "gen", "hidlr-diag"]


START_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
LR0_TAG = "@lr0="


def start_rate_variant(method: Method, lr0: float) -> Method:
    """``method`` started from ``lr0`` instead of the workload's default rate."""
    if not method.takes_lr0 or method.varies is not None:
        raise ValueError(f"method {method.name!r} has no start rate to vary")
    if not (isinstance(lr0, (int, float)) and math.isfinite(lr0) and lr0 > 0):
        raise ValueError(f"lr0 must be a positive finite number, got {lr0!r}")
    return replace(
        method,
        name=f"{method.name}{LR0_TAG}{lr0:g}",
        family="start-rate",
        lr0=float(lr0),
        varies=method.name,
        description=f"{method.description}; started at lr0={lr0:g}",
    )


def _lookup(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    base, tag, rate = name.partition(LR0_TAG)
    if tag and base in METHODS:
        try:
            return start_rate_variant(METHODS[base], float(rate))
        except ValueError as exc:
            raise ValueError(f"method {name!r}: {exc}") from None
    raise ValueError(
        f"unknown method {name!r}; known: {list(METHODS)}, and <method>{LR0_TAG}<rate> for "
        f"{[m.name for m in METHODS.values() if m.takes_lr0]}"
    )


def check_start_rates(lr0s: list[float]) -> None:
    """Refuse start rates that are not positive and finite (all of them named)."""
    bad = [r for r in lr0s if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0]
    if bad:
        raise ValueError(f"start rates must be positive and finite, got {bad}")


def get(names: list[str] | None = None, lr0s: list[float] | None = None) -> list[Method]:
    """The methods named (all when None; ``<method>@lr0=<rate>`` names a start-rate variant), plus,
    for each rate in ``lr0s``, the start-rate variant of every named method that takes one.
    An unknown name is an error."""
    check_start_rates(lr0s or [])
    ms = list(METHODS.values()) if names is None else [_lookup(n) for n in names]
    for lr0 in lr0s or []:
        ms += [
            start_rate_variant(m, lr0) for m in list(ms) if m.takes_lr0 and m.varies is None and m.family != "ablation"
        ]
    seen: set[str] = set()
    return [m for m in ms if not (m.name in seen or seen.add(m.name))]
