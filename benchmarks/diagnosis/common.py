"""Shared pieces of the rate diagnosis: Hi-DLR variants as benchmark methods from any start rate,
and a parallel-free runner that writes one JSON line per run (so runs can be resumed and merged)."""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from hidlr import HiDLR
from hidlr.bench.lr import runner
from hidlr.bench.lr.methods import Method, Setup, base_optimizer, trainable
from hidlr.bench.lr.runner import run_one
from hidlr.bench.lr.workloads import Task, Workload
from hidlr.bench.lr.workloads import get as get_workloads

LOSING = ["digits-lora", "digits-cnn-bn", "digits-mlp-head-sgd", "digits-mlp-bias", "multitask-heads", "mdn"]
START_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def hidlr_method(
    name: str, options: dict[str, Any], lr0_factor: float = 1.0, one_group: bool = False, probe: str = "same"
) -> Method:
    """Hi-DLR with ``options`` started at ``lr0_factor`` times the workload's default rate. An entry
    ``"rules": {...}`` of ``options`` overrides fields of the optimizer's ``RuleConfig`` after
    construction (rule variants not exposed as constructor arguments)."""
    options = dict(options)
    overrides = options.pop("rules", {})

    def build(wl: Workload, task: Task, spec: object = None) -> Setup:
        groups = [{"name": "all", "params": trainable(task.model)}] if one_group else task.groups
        lr0 = wl.default_lr * lr0_factor
        opt = HiDLR(base_optimizer(wl, groups, lr0), **options)
        opt.rules = dataclasses.replace(opt.rules, **overrides)
        return Setup(opt, probe=probe, lr=lr0)

    return Method(name, "ablation", name, build, options)


def fixed_method(lr: float) -> Method:
    def build(wl: Workload, task: Task, spec: object = None) -> Setup:
        return Setup(base_optimizer(wl, task.groups, lr), lr=lr)

    return Method(f"fixed-{lr:g}", "grid", f"base optimizer at {lr:g}", build)


def run_logged(
    out: Path, wl_name: str, method: Method, seed: int, tag: dict[str, Any], steps: int | None = None
) -> dict[str, Any]:
    """Run (or reuse from ``out``, a JSON-lines file) one method on one workload and seed."""
    key = {"workload": wl_name, "method": method.name, "seed": seed, **tag}
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            if all(rec.get(k) == v for k, v in key.items()):
                return rec
    torch.set_num_threads(1)
    wl = get_workloads([wl_name])[0]
    rec = run_one(wl, method, seed, steps or wl.steps)
    slim = {
        **key,
        "status": rec["status"],
        "final_loss": rec["final_loss"],
        "reason": rec["reason"],
        "lr_trace": rec["lr_trace"],
        "curve_loss": rec["curve"]["loss"],
        "step_time": rec["step_time"],
        "groups": rec.get("groups"),
    }
    with out.open("a") as f:
        f.write(json.dumps(slim) + "\n")
    print(f"{wl_name:22s} {method.name:28s} seed {seed} {tag} -> {rec['status']} {rec['final_loss']}", file=sys.stderr)
    return slim


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def median_loss(recs: list[dict[str, Any]]) -> float:
    vals = [r["final_loss"] if r["status"] == "ok" else float("inf") for r in recs]
    return statistics.median(vals) if vals else float("nan")


_make_probe = runner.make_probe


def make_probe_with_val(task, batch, mode, probe_gen, crn_seed):
    """``runner.make_probe`` with one more mode, ``"val"``: the ORACLE probe that evaluates the
    workload's validation loss itself (what the final score uses). Install it with
    ``runner.make_probe = make_probe_with_val``."""
    if mode != "val":
        return _make_probe(task, batch, mode, probe_gen, crn_seed)

    def probe() -> torch.Tensor:
        with runner.frozen_norm_stats(task.model):
            return torch.tensor(task.evaluate(task.model)["loss"], dtype=torch.float32)

    return probe


def patch_grow_concave(until_arrived: bool = False) -> None:
    """PROTOTYPE, not in the engine: a one-group line that descends but is concave takes the largest
    multiple the clip allows, where the engine keeps the rate ("one-group line not convex").
    ``until_arrived``: only while the rates have not arrived (no refresh yet had every target
    inside the clip), and ``restart_schedule`` makes them travel again (a new phase)."""
    from hidlr.optim import rules
    from hidlr.optim.refresh import Refresher

    original_multiple, original_line = rules.line_multiple, Refresher._decide_by_line
    state = {"arrived": False}

    def line_multiple(line, span, resolution, max_multiple, min_r2=0.0):
        multiple, why = original_multiple(line, span, resolution, max_multiple, min_r2)
        grow = why == rules.NO_LINE and not (until_arrived and state["arrived"])
        return (max_multiple, None) if grow else (multiple, why)

    def decide_by_line(self, *args, **kwargs):
        state["arrived"] = self._arrived
        return original_line(self, *args, **kwargs)

    rules.line_multiple = line_multiple
    Refresher._decide_by_line = decide_by_line
    if until_arrived:
        original_restart = HiDLR.restart_schedule

        def restart_schedule(self):
            original_restart(self)
            self._arrived = False

        HiDLR.restart_schedule = restart_schedule


def patch_unsmoothed_clip() -> None:
    """PROTOTYPE, not in the engine: a group whose target is cut by the clip takes the clipped
    target at once, unsmoothed (the engine smooths every target: a growth of 1.7x per refresh at
    clip 2 and ema 0.3, where the clip alone allows 2x)."""
    from hidlr.optim import rules

    def settle(decisions, betas, config):
        out = []
        for d, beta in zip(decisions, betas):
            if not d.accepted:
                out.append(d)
                continue
            raw = d.newton_rate * rules.momentum_factor(beta, config.horizon)
            target = rules.clip_rate(d.estimate, raw, config.clip)
            estimate = target if target != raw else rules.smooth(d.estimate, target, config.ema)
            out.append(rules.replace(d, target=target, estimate=estimate))
        return out

    rules.settle = settle


def patch_restart_phase() -> None:
    """PROTOTYPE, not in the engine: ``restart_schedule`` starts a new phase of the rates too. The
    rates may travel again (arrival and the travel count are reset), and with a step budget the
    growth window restarts: it covers ``grow_window`` of the steps left at the restart."""
    from hidlr.optim import schedule
    from hidlr.optim.refresh import Refresher

    original_restart, original_settle = HiDLR.restart_schedule, Refresher._settle
    original_growth = schedule.growth_config
    phase = {"start": 0}

    def restart_schedule(self):
        original_restart(self)
        self._arrived = False
        self._travel_refreshes = 0
        self._phase_start = self._t

    def settle(self, *args, **kwargs):
        phase["start"] = getattr(self, "_phase_start", 0)
        return original_settle(self, *args, **kwargs)

    def growth_config(config, t, arrived):
        p, total = phase["start"], config.total_steps
        if total is not None and p > 0 and total > p:
            t = int((t - p) * total / (total - p))  # the same share of the phase's steps
        return original_growth(config, t, arrived)

    HiDLR.restart_schedule = restart_schedule
    Refresher._settle = settle
    schedule.growth_config = growth_config


def patch_travel_direction(cuts_only: bool = True) -> None:
    """PROTOTYPE, not in the engine (round 6 of ``docs/diagnosis.md``): a travel refresh (the
    one-group line alone, after a refresh whose targets the clip cut) may not raise a rate that the
    refresh before it asked to fall (its settled target below its estimate before settling). The
    engine gives every group the line's multiple, which can undo a cut the groups' own fits asked
    for. ``cuts_only=False``: nor lower a rate that the refresh before asked to rise. The bound is
    the Newton rate whose target, after the momentum correction, is the estimate itself; applied
    before the clip test, so a travel that would reverse stops."""
    from dataclasses import replace

    from hidlr.optim import rules
    from hidlr.optim.refresh import Refresher

    original_line, original_settle = Refresher._decide_by_line, rules.settle
    state = {"travelling": False, "opt": None}

    def decide_by_line(self, probe, move, loss0, applied, active, travelling):
        state["travelling"], state["opt"] = travelling, self
        try:
            return original_line(self, probe, move, loss0, applied, active, travelling)
        finally:
            state["travelling"], state["opt"] = False, None

    def clipped(decisions, betas, config, _original=rules.clipped):
        opt = state["opt"]
        if state["travelling"] and opt is not None:
            ways = getattr(opt, "_proto_directions", [0] * len(decisions))
            out = []
            for d, way, beta in zip(decisions, ways, betas):
                if d.accepted and way != 0 and d.estimate > 0 and (way < 0 or not cuts_only):
                    level = d.estimate / rules.momentum_factor(beta, config.horizon)
                    d = replace(d, newton_rate=min(d.newton_rate, level) if way < 0 else max(d.newton_rate, level))
                out.append(d)
            decisions[:] = out  # the same list goes on to settle
        return _original(decisions, betas, config)

    def settle(decisions, betas, config):
        settled = original_settle(decisions, betas, config)
        opt = state["opt"] or state.get("refresher")
        ways = []
        for before, d in zip(decisions, settled):
            t = d.target if d.accepted else None
            ways.append(0 if t is None or t == before.estimate else (1 if t > before.estimate else -1))
        if opt is not None:
            opt._proto_directions = ways
        return settled

    original_decide = Refresher._decide

    def decide(self, *args, **kwargs):
        state["refresher"] = self
        try:
            return original_decide(self, *args, **kwargs)
        finally:
            state["refresher"] = None

    Refresher._decide_by_line = decide_by_line
    Refresher._decide = decide
    rules.clipped = clipped
    rules.settle = settle
