"""Round 4 of the rate diagnosis: the greedy rate, annealed over a known step budget.

Findings 3 and 5 of ``docs/diagnosis.md`` point the same way: over the rest of a run, a smaller rate
than the one-step Newton rate ends lower (the 50-step look-ahead preferred 0.1-0.5x Hi-DLR's rates
on 5 of 6 workloads; late in training the Newton rate grows while the held-out loss no longer
gains). A decay over the step budget is what users of tuned rates add for the same reason. The
variants here multiply Hi-DLR's rates by a decay factor through a chainable scheduler (the
wrapper's documented scheduler contract: applied = estimate x factor), every option else at the
engine's defaults, told the step budget, probing one more training batch (as ``hidlr bench lr``'s
``hidlr-diag`` and ``gen``):

- ``hidlr`` / ``gen``: no decay (``gen``: every parameter in one group, the one-group rule);
- ``*-cos``: cosine decay to 0 over the budget;
- ``*-lin``: linear decay to 0 over the budget;
- ``*-cos10``: cosine decay to a tenth of the rate;
- ``*-wsd``: the rate unchanged for the first 80% of the budget, then linear decay to 0 (the
  "warm-up, stable, decay" shape without the warm-up: the first refresh sets the rate).

    .venv/bin/python benchmarks/diagnosis/round4.py --variants hidlr hidlr-cos gen gen-cos \
        --out benchmarks/diagnosis/results/round4.jsonl
    .venv/bin/python benchmarks/diagnosis/round4.py --variants hidlr-cos gen-cos --lr0 1e-5 1e-4 1e-2 1e-1 \
        --out benchmarks/diagnosis/results/round4-start.jsonl
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch
from common import run_logged

from hidlr import HiDLR
from hidlr.bench.lr.methods import Method, RunSpec, Setup, base_optimizer, trainable
from hidlr.bench.lr.workloads import Task, Workload
from hidlr.bench.lr.workloads import get as get_workloads

DECAYS: dict[str, Callable[[float], float]] = {
    "": lambda u: 1.0,
    "cos": lambda u: 0.5 * (1.0 + math.cos(math.pi * u)),
    "lin": lambda u: 1.0 - u,
    "cos10": lambda u: 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * u)),
    "wsd": lambda u: min(1.0, (1.0 - u) / 0.2),
}


def variant(name: str, lr0: float | None) -> Method:
    """``hidlr[-decay][+option=value...]`` or ``gen[-decay][+...]`` started at ``lr0`` (None: the
    workload's default). The engine's own anneal is off (``anneal=None``, as at commit 8373ce5 where
    these runs were made), so the decay is the scheduler's alone; ``+option=value`` sets a HiDLR
    option (a number, or None), e.g. ``hidlr-wsd+shrink=0.25``."""
    head, *extra = name.split("+")
    rule, _, decay_name = head.partition("-")
    decay = DECAYS[decay_name]
    options: dict = {"anneal": None}
    for item in extra:
        key, _, value = item.partition("=")
        options[key] = None if value == "None" else float(value)

    def build(wl: Workload, task: Task, spec: RunSpec) -> Setup:
        groups = [{"name": "all", "params": trainable(task.model)}] if rule == "gen" else task.groups
        lr = wl.default_lr if lr0 is None else lr0
        opt = HiDLR(base_optimizer(wl, groups, lr), total_steps=spec.steps, **options)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: decay(min(s, spec.steps) / spec.steps))
        return Setup(opt, probe="separate", lr=lr, after_step=sched.step if decay_name else None)

    return Method(name, "ablation", name, build, takes_lr0=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--lr0", nargs="+", type=float, default=[], help="start rates besides the default")
    ap.add_argument("--no-default", action="store_true", help="skip the workload's default start rate")
    ap.add_argument("--workloads", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for w in a.workloads or [wl.name for wl in get_workloads()]:
        wl = get_workloads([w])[0]
        starts = ([] if a.no_default else [None]) + [lr for lr in a.lr0 if lr != wl.default_lr]
        for lr0 in starts:
            for name in a.variants:
                for s in a.seeds:
                    run_logged(a.out, w, variant(name, lr0), s, {"lr0": "default" if lr0 is None else lr0})


if __name__ == "__main__":
    main()
