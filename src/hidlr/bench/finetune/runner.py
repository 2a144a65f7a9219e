"""Runs the fine-tuning line-up: grids tuned on validation NLL, the freezing family from one shared
influence run, and the side-by-side cost measurement of frozen groups."""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import Workload
from hidlr.bench.finetune.train import (
    SavedActivations,
    Setup,
    optimizer_state_bytes,
    run_training,
    trainable_params,
)
from hidlr.influence import (
    FreezePlan,
    apply_plan,
    format_table,
    freeze,
    freeze_groups,
    influence_table,
    plan_for,
)
from hidlr.optim import HiDLR

Record = dict[str, Any]


def run_method(
    wl: Workload,
    method: M.Method,
    head: str,
    seed: int,
    lr: float,
    steps: int,
    batch_size: int,
    tick: Callable[[], None] | None,
) -> dict[str, Any]:
    model = M.new_model(wl, head, seed)
    with torch.random.fork_rng(devices=[]):  # adapters drawn at random (LoRA's A) depend on the seed alone
        torch.manual_seed(seed)
        setup = method.build(model, lr, steps)
    return run_training(setup, wl, steps, batch_size, seed, tick=tick)


def run_lineup(
    wl: Workload,
    table: dict[str, M.Method],
    names: list[str],
    head: str,
    seed: int,
    steps: int,
    batch_size: int,
    emit: Callable[[Record], None],
    tick: Callable[[], None] | None,
) -> dict[str, float]:
    """Every method in ``names`` (grids first, so that ``rate_from`` finds its tuned rate); returns
    the tuned rate per grid method."""
    tuned: dict[str, float] = {}
    order = sorted(names, key=lambda n: table[n].rate_from is not None)
    for name in order:
        m = table[name]
        if m.grid:
            best = None
            for lr in m.grid:
                res = run_method(wl, m, head, seed, lr, steps, batch_size, tick)
                emit({"method": name, "head": head, "seed": seed, "lr": lr, "grid": list(m.grid), "result": res})
                nll = res.get("val", {}).get("nll", float("inf"))
                if best is None or nll < best[0]:
                    best = (nll, lr)
            tuned[name] = best[1]
        else:
            lr = tuned.get(m.rate_from) if m.rate_from else m.rate
            if lr is None:
                raise ValueError(f"method {name!r} takes its rate from {m.rate_from!r}, which is not in the line-up")
            res = run_method(wl, m, head, seed, lr, steps, batch_size, tick)
            emit(
                {
                    "method": name,
                    "head": head,
                    "seed": seed,
                    "lr": lr,
                    "grid": None,
                    "result": res,
                    "rate_from": m.rate_from,
                }
            )
    return tuned


def run_freezing(
    wl: Workload,
    head: str,
    seed: int,
    steps: int,
    batch_size: int,
    budgets: dict[str, float],
    emit: Callable[[Record], None],
    tick: Callable[[], None] | None,
    quick: bool,
    grouping: str = "modules",
    tell_budget: bool = True,
    per_group: bool = False,
    influence_share: float = 0.1,
    carry_state: bool = True,
    max_reach: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """One influence run (Hi-DLR over the groups of ``grouping``, every group fitted at each of its
    refreshes, two per tenth of the run, over the first ``influence_share`` of the steps), then for
    each budget: freeze by the plan (the head always trains) and continue with Hi-DLR for the
    remaining steps, its refresh schedule started over. The continuation is told the run's step
    budget with ``tell_budget`` (so it anneals, as the other Hi-DLR methods do); with ``per_group``
    it fits every kept group at each refresh, else it keeps HiDLR's defaults (the one-group line
    when more than 8 groups train). The defaults were chosen on 3 seeds
    (``benchmarks/diagnosis/freeze5.py``). With ``carry_state`` the continuation takes the influence
    run's optimizer state (Adam moments, rates, refresh history), else it starts afresh at the
    start rate. ``max_reach``: per budget label, the share of the groups, counted back from the head,
    among which its plan keeps groups (:func:`hidlr.influence.plan_from_scores`; labels not in it:
    any group). Runs spent: one per budget (the influence run is shared)."""
    if grouping not in M.FREEZE_GROUPINGS:
        raise ValueError(f"grouping must be one of {', '.join(M.FREEZE_GROUPINGS)}, got {grouping!r}")
    lr = M.HIDLR_START * (10.0 if quick else 1.0)
    if not 0 < influence_share < 1:
        raise ValueError(f"influence_share must be in (0, 1), got {influence_share}")
    prefix = max(3, int(steps * influence_share))
    every = max(1, -(-max(3, steps // 10) // 2))  # two refreshes per tenth of the run
    model = M.new_model(wl, head, seed)
    setup = M.hidlr_modules(model, lr, steps, every=every, grouping=grouping)
    t0 = time.perf_counter()
    pre = run_training(setup, wl, prefix, batch_size, seed, tick=tick, score=False)
    pre["wall_seconds"] = time.perf_counter() - t0
    table = influence_table(setup.optimizer)
    info = {
        "head": head,
        "seed": seed,
        "prefix_steps": prefix,
        "prefix": pre,
        "grouping": grouping,
        "groups": len(table),
        "table": [vars(r) for r in table],
        "table_md": format_table(table),
    }
    state = copy.deepcopy(setup.optimizer.state_dict())  # load_state_dict may share tensors: copy per use
    for label, budget in budgets.items():
        reach = (max_reach or {}).get(label)
        m2 = copy.deepcopy(model)
        opt = HiDLR(
            torch.optim.Adam(M.FREEZE_GROUPINGS[grouping](m2), lr=lr),
            **({"max_groups": None, "groups_per_refresh": None} if per_group else {}),
            # a carried state's step count goes on from the influence run's
            total_steps=(steps if carry_state else steps - prefix) if tell_budget else None,
        )
        keep = M.head_group_names(opt.param_groups)
        if carry_state:
            with warnings.catch_warnings():  # the refresh schedule changes on purpose: fixed -> "auto"
                warnings.filterwarnings("ignore", message="HiDLR checkpoint made under other options")
                opt.load_state_dict(copy.deepcopy(state))  # Adam moments, rates and history of the influence run
            plan = freeze(opt, budget=budget, model=m2, keep=keep, max_reach=reach)
        else:
            plan = plan_for(setup.optimizer, budget=budget, model=model, keep=keep, max_reach=reach)
            freeze_groups(opt, plan.frozen_groups)
        res = run_training(Setup(m2, opt, lr=lr), wl, steps - prefix, batch_size, seed, tick=tick, start=prefix)
        res["train_seconds_with_prefix"] = res["train_seconds"] + pre["train_seconds"]
        emit(
            {
                "method": label,
                "head": head,
                "seed": seed,
                "lr": lr,
                "grid": None,
                "budget": budget,
                "max_reach": reach,
                "plan": {
                    "kept_groups": list(plan.kept_groups),
                    "trainable_params": plan.trainable_params,
                    "total_params": plan.total_params,
                    "fraction": plan.fraction,
                },
                "result": res,
            }
        )
        info.setdefault("plans", {})[label] = plan
    return info


def _model_for_cost(
    wl: Workload, config: str, plan: FreezePlan | None
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = M.new_model(wl, "mdn", 0)
    if config == "lora":
        M.add_lora(model)
    elif config == "last-layer":
        model.encoder.requires_grad_(False)
    elif plan is not None:
        apply_plan(model, plan)
    return model, torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def measure_costs(
    wl: Workload,
    plans: dict[str, FreezePlan],
    batch_size: int,
    rounds: int = 3,
    steps: int = 5,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Step time and accounted memory of plain Adam steps, full model against frozen plans (applied
    by name to a fresh model), LoRA and the head alone; configurations alternate round by round in
    this process, so machine load hits all alike. Medians over rounds of each round's median. A
    plan's ``reach``: the share of its groups the backward pass runs through (:attr:`FreezePlan.reach`)."""
    configs: dict[str, FreezePlan | None] = {"full": None, **plans, "lora": None, "last-layer": None}
    gen = torch.Generator().manual_seed(0)
    batch = wl.train.take(torch.randperm(len(wl.train), generator=gen)[:batch_size])
    times: dict[str, list[float]] = {c: [] for c in configs}
    memory: dict[str, dict[str, int]] = {}
    params: dict[str, int] = {}
    for _ in range(rounds):
        for config, plan in configs.items():
            model, opt = _model_for_cost(wl, config, plan)
            params[config] = trainable_params(model)
            per = []
            for i in range(steps + 1):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                saved = SavedActivations(model)
                with saved:
                    loss = model.loss(batch.x, batch.ratings)
                loss.backward()
                opt.step()
                if i > 0:  # the first step allocates the optimizer state
                    per.append(time.perf_counter() - t0)
            grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
            memory[config] = {
                "params": sum(p.numel() * p.element_size() for p in model.parameters()),
                "grads": grads,
                "optimizer_state": optimizer_state_bytes(opt),
                "activations": saved.bytes,
            }
            memory[config]["total"] = sum(memory[config].values())
            times[config].append(statistics.median(per))
            del model, opt
            if tick is not None:
                tick()
    full_t, full_m = statistics.median(times["full"]), memory["full"]["total"]
    return {
        c: {
            "trainable_params": params[c],
            "step_seconds": statistics.median(times[c]),
            "step_seconds_rounds": times[c],
            "time_ratio": statistics.median(times[c]) / full_t,
            "memory": memory[c],
            "memory_ratio": memory[c]["total"] / full_m,
            "trainable_ratio": params[c] / params["full"],
            "reach": None if configs[c] is None else configs[c].reach,
        }
        for c in configs
    }


def influence_run(
    wl: Workload,
    head: str = "mdn",
    steps: int = 10,
    refreshes: int = 2,
    batch_size: int = 32,
    seed: int = 0,
    lr: float = M.HIDLR_START,
) -> tuple[torch.nn.Module, HiDLR]:
    """A short Hi-DLR(Adam) run over per-module groups refreshing ``refreshes`` times; returns the
    model and the optimizer (read ``opt.influence``, plan with :func:`hidlr.influence.plan_for`)."""
    if steps < 1 or refreshes < 1:
        raise ValueError(f"steps and refreshes must be positive, got {steps} and {refreshes}")
    model = M.new_model(wl, head, seed)
    setup = M.hidlr_modules(model, lr, steps, every=max(1, -(-steps // refreshes)))
    run_training(setup, wl, steps, batch_size, seed, score=False)
    return model, setup.optimizer
