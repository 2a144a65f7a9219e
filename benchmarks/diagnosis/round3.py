"""Round 3 of the rate diagnosis: the four workloads where the defaults still lose most.

Variants of the default rule (commit 3b3ed65), each probing once per refresh:

- ``diag-sep``: the default (per-group rates; one more training batch as the probe batch);
- ``diag-val`` / ``gen-val``: ORACLE probes that evaluate the workload's validation loss (the data the
  final score uses), so their figures bound from above what a held-out probe split could do;
- ``*-cut0.5``: PROTOTYPE rule, not in the engine: a group (or the one-group line) whose update is
  not a descent direction on the probe loss (``b <= 0``) takes half its rate instead of keeping it;
- ``diag-nogrow1.0``: PROTOTYPE rule, not in the engine: once a refresh has had every target inside
  the clip (the start rate has "arrived"), the clip's upper bound is 1, so rates may only fall;
- ``diag-growwin<f>``: PROTOTYPE rule, not in the engine: rates may grow during the first fraction
  ``f`` of the workload's step budget only; afterwards the clip's upper bound is 1;
- ``diag-backtrack``: PROTOTYPE rule, not in the engine (on top of the engine's step budget): at the
  first refresh a group whose fit is rejected as not quadratic, not convex or not descending (the
  probes reached beyond where the loss is quadratic: a start rate far too large) takes a tenth of
  its rate instead of keeping it, and the rates travel on from there;
- ``diag-reprobe``: PROTOTYPE, not in the engine (on top of the step budget): when the first
  refresh rejects a group's fit as not quadratic, not convex or not descending, it probes again at
  a tenth of the multiples (the same refresh, more forward passes) and takes that fit for the group;
- ``diag-arrive``: PROTOTYPE, not in the engine (on top of the step budget): the growth window also
  stays open until the rates have arrived (a refresh had every target inside the clip);
- ``diag-backtrack-refit``: PROTOTYPE, as ``diag-backtrack``, and the first refresh with the group's
  own fit after the cut may raise its rate up to 10x (the cut was a guess; its own fit decides).

The prototypes are monkeypatches of ``hidlr.optim.rules`` inside this script.

    .venv/bin/python benchmarks/diagnosis/round3.py probes --out benchmarks/diagnosis/results/round3-probes.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py cut --out benchmarks/diagnosis/results/round3-cut.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py nogrow --out benchmarks/diagnosis/results/round3-nogrow.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py growwin --frac 0.1 0.25 0.5 \
        --out benchmarks/diagnosis/results/round3-growwin.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py growwin --frac 0.25 --with-default --seeds 3 4 \
        --out benchmarks/diagnosis/results/round3-growwin-fresh.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py budget --seeds 3 4 \
        --out benchmarks/diagnosis/results/round3-budget-fresh.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py arrive --lr0 1e-05 0.1 \
        --out benchmarks/diagnosis/results/round3-arrive.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py reprobe --lr0 0.01 0.1 \
        --out benchmarks/diagnosis/results/round3-reprobe.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py backtrack-refit --lr0 0.01 0.1 \
        --out benchmarks/diagnosis/results/round3-backtrack-refit.jsonl
    .venv/bin/python benchmarks/diagnosis/round3.py backtrack --lr0 0.01 0.1 \
        --out benchmarks/diagnosis/results/round3-backtrack.jsonl
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from common import hidlr_method, make_probe_with_val, run_logged

from hidlr.bench.lr import runner
from hidlr.bench.lr.workloads import get as get_workloads
from hidlr.optim import rules

LOSING = ["digits-finetune", "digits-resnet-bn", "digits-mlp-head-sgd", "digits-mlp-bias-long"]
ALL_BUT_MANY_GROUPS = [
    "digits-mlp-bias",
    "digits-cnn-bn",
    "digits-mlp-head-sgd",
    "digits-lora",
    "mdn",
    "bnn",
    "seq-transformer",
    "noisy-quadratic",
    "digits-resnet-bn",
    "char-gpt",
    "digits-finetune",
    "digits-mlp-bias-long",
    "noisy-quadratic-long",
]
CUT = 0.5


def _patch_cut() -> None:
    """Prototype: a rejection for ascent (b <= 0) becomes a cut to ``CUT`` times the rate."""
    newton_decisions, line_multiple = rules.newton_decisions, rules.line_multiple

    def cut_decisions(*args, **kwargs):
        return [
            replace(d, accepted=True, reason=None, newton_rate=d.rate * CUT)
            if (d.reason or "").startswith("not a descent")
            else d
            for d in newton_decisions(*args, **kwargs)
        ]

    def cut_line(line, *args, **kwargs):
        m, why = line_multiple(line, *args, **kwargs)
        return (CUT, None) if why == rules.LINE_ASCENT else (m, why)

    rules.newton_decisions, rules.line_multiple = cut_decisions, cut_line


def _patch_nogrow() -> None:
    """Prototype: after arrival the clip's upper bound is 1 (rates only fall)."""
    settle = rules.settle

    def settle_nogrow(decisions, betas, config):
        opt = sys._getframe(1).f_locals.get("self")  # the optimizer whose refresh calls settle
        if opt is not None and opt._arrived and config.clip is not None:
            config = replace(config, clip=(config.clip[0], 1.0))
        return settle(decisions, betas, config)

    rules.settle = settle_nogrow


_BUDGET = [0]  # the step budget of the workload being run (growwin)
_FRAC = [0.25]


def _patch_growwin() -> None:
    """Prototype: from step ``_FRAC * _BUDGET`` on, the clip's upper bound is 1 (rates only fall)."""
    settle = rules.settle

    def settle_window(decisions, betas, config):
        opt = sys._getframe(1).f_locals.get("self")  # the optimizer whose refresh calls settle
        if opt is not None and opt._t >= _FRAC[0] * _BUDGET[0] and config.clip is not None:
            config = replace(config, clip=(config.clip[0], 1.0))
        return settle(decisions, betas, config)

    rules.settle = settle_window


BACKTRACK = ("poor quadratic fit", "not convex along the update", "not a descent direction")


def _patch_backtrack() -> None:
    """Prototype: at the first refresh, a group rejected by :data:`BACKTRACK` takes 0.1 x its rate."""
    newton_decisions = rules.newton_decisions

    def backtrack_decisions(*args, **kwargs):
        opt = sys._getframe(1).f_locals.get("self")  # the optimizer whose refresh decides
        out = newton_decisions(*args, **kwargs)
        if opt is None or opt._refreshes != 0:
            return out
        return [
            replace(d, accepted=True, reason=None, newton_rate=0.1 * d.rate)
            if d.rate > 0 and (d.reason or "").startswith(BACKTRACK)
            else d
            for d in out
        ]

    rules.newton_decisions = backtrack_decisions


def _calling_optimizer():
    """The HiDLR whose refresh is on the call stack (the prototypes patch pure rule functions)."""
    frame = sys._getframe(2)
    while frame is not None:
        me = frame.f_locals.get("self")
        if me is not None and hasattr(me, "_refreshes"):
            return me
        frame = frame.f_back
    return None


def _patch_reprobe() -> None:
    """Prototype: the first refresh re-probes its rejected groups at a tenth of the multiples."""
    from hidlr.optim.refresh import Refresher

    decide = Refresher._decide

    def decide_reprobe(self, probe, move, loss0, applied, active, probed):
        if self._refreshes != 0:
            return decide(self, probe, move, loss0, applied, active, probed)
        passes = []
        self._settle = lambda decisions, loss0, forwards, scale: passes.append((decisions, forwards, scale))
        try:
            decide(self, probe, move, loss0, applied, active, probed)
            first = passes[0][0]
            again = [k for k, d in enumerate(first) if probed[k] and (d.reason or "").startswith(BACKTRACK)]
            if again:
                kept = self.probes
                self.probes = tuple(0.1 * m for m in kept)
                try:
                    decide(self, probe, move, loss0, applied, active, probed)
                finally:
                    self.probes = kept
        finally:
            del self._settle  # the class's method again
        decisions = list(first)
        if len(passes) > 1:
            second = passes[1][0]
            decisions = [second[k] if k in again else d for k, d in enumerate(first)]
        return self._settle(decisions, loss0, sum(p[1] for p in passes), passes[0][2])

    Refresher._decide = decide_reprobe


def _patch_arrive() -> None:
    """Prototype: rates may grow inside the window or until they have arrived."""
    may_grow = rules.may_grow

    def may_grow_until_arrived(config, t):
        opt = _calling_optimizer()
        return may_grow(config, t) or (opt is not None and not opt._arrived)

    rules.may_grow = may_grow_until_arrived


def _patch_refit() -> None:
    """Prototype: groups cut by :func:`_patch_backtrack` may grow 10x at their next own fit."""
    newton_decisions, settle = rules.newton_decisions, rules.settle

    def mark_cut(*args, **kwargs):
        opt = _calling_optimizer()
        out = newton_decisions(*args, **kwargs)
        if opt is not None and opt._refreshes == 0:
            opt._cut_groups = {k for k, d in enumerate(out) if d.rate > 0 and (d.reason or "").startswith(BACKTRACK)}
        return out

    def settle_refit(decisions, betas, config):
        opt = _calling_optimizer()
        cut = getattr(opt, "_cut_groups", set()) if opt is not None and opt._refreshes > 0 else set()
        own = [k for k in cut if decisions[k].a is not None]  # the group's own fit, not a line refresh
        if not own or config.clip is None:
            return settle(decisions, betas, config)
        wide = settle(decisions, betas, replace(config, clip=(config.clip[0], 10.0)))
        usual = settle(decisions, betas, config)
        opt._cut_groups = cut - set(own)
        return [wide[k] if k in own else usual[k] for k in range(len(decisions))]

    rules.newton_decisions, rules.settle = mark_cut, settle_refit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "study",
        choices=["probes", "cut", "nogrow", "growwin", "backtrack", "backtrack-refit", "reprobe", "arrive", "budget"],
    )
    ap.add_argument(
        "--lr0", nargs="+", type=float, default=[], help="backtrack and later studies: start rates besides the default"
    )
    ap.add_argument("--frac", nargs="+", type=float, default=[0.25], help="growwin: growth windows")
    ap.add_argument("--with-default", action="store_true", help="growwin: also run the default")
    ap.add_argument("--workloads", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    runner.make_probe = make_probe_with_val
    if a.study == "probes":
        variants = [("diag-sep", False, "separate"), ("diag-val", False, "val"), ("gen-val", True, "val")]
        workloads = a.workloads or LOSING
    elif a.study == "cut":
        _patch_cut()
        variants = [
            (f"diag-val-cut{CUT}", False, "val"),
            (f"diag-sep-cut{CUT}", False, "separate"),
            (f"gen-val-cut{CUT}", True, "val"),
        ]
        workloads = a.workloads or LOSING
    elif a.study in ("backtrack", "backtrack-refit", "reprobe", "arrive", "budget"):
        if a.study == "budget":  # the engine as it is, told the step budget: nothing patched
            pass
        elif a.study == "backtrack":
            _patch_backtrack()
        elif a.study == "reprobe":
            _patch_reprobe()
        elif a.study == "arrive":
            _patch_arrive()
        else:
            _patch_refit()  # marks the cut groups, then the cut itself on top
            _patch_backtrack()
        name = f"diag-{a.study}"
        for w in a.workloads or [wl.name for wl in get_workloads()]:
            wl = get_workloads([w])[0]
            for f in [1.0] + [lr / wl.default_lr for lr in a.lr0 if lr != wl.default_lr]:
                method = hidlr_method(name, {"total_steps": wl.steps}, lr0_factor=f, probe="separate")
                for s in a.seeds:
                    run_logged(a.out, w, method, s, {"lr0": "default" if f == 1.0 else f * wl.default_lr})
        return
    elif a.study == "nogrow":
        _patch_nogrow()
        variants = [("diag-nogrow1.0", False, "separate")]
        workloads = a.workloads or ALL_BUT_MANY_GROUPS
    else:
        _patch_growwin()
        workloads = a.workloads or ALL_BUT_MANY_GROUPS
        for w in workloads:
            _BUDGET[0] = get_workloads([w])[0].steps
            names = (["diag-sep"] if a.with_default else []) + [f"diag-growwin{f}" for f in a.frac]
            for name in names:
                _FRAC[0] = float(name.removeprefix("diag-growwin")) if name != "diag-sep" else float("inf")
                method = hidlr_method(name, {}, probe="separate")
                for s in a.seeds:
                    run_logged(a.out, w, method, s, {"lr0": "default"})
        return
    for w in workloads:
        for name, one_group, probe in variants:
            method = hidlr_method(name, {}, one_group=one_group, probe=probe)
            for s in a.seeds:
                run_logged(a.out, w, method, s, {"lr0": "default"})


if __name__ == "__main__":
    main()
