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
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from common import patch_grow_concave, patch_travel_direction, run_logged
from window_prototypes import (
    REPROBE_REASONS,
    REPROBED,
    patch_full_early,
    patch_lock_ratios,
    patch_pool_when_agreeing,
    patch_reprobe,
)

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


# the prototypes' flags in a variant's name, not HiDLR options
PROTOTYPE_FLAGS = (
    "armijo",
    "growconcave",
    "untilarrived",
    "startconcave",
    "traveldir",
    "traveldir2",
    "trend",
    "pool",
    "follow",
    "followdescent",
    "followmeasured",
    "lookback",
    "unmeasurable",
    "arrivalcredit",  # round 20 (adopted in 8dff1f8; the flag ran at 68e05e2)
    "growwindow",
    "reprobe",
    "reprobemeasured",
    "lockratios",
    "fullearly",
    "poolagree",
)


def _number_or_word(value: str) -> float | str | tuple[float, ...]:
    """An option's value from a variant's name: a number, numbers separated by ``/`` (a tuple, such
    as ``probes=-1/-0.5/0.5/1``), or a word such as ``full`` (``mode=full``)."""
    if "/" in value:
        return tuple(float(x) for x in value.split("/"))
    try:
        return float(value)
    except ValueError:
        return value


def variant(name: str, lr0: float | None) -> Method:
    """``hidlr[-decay][+option=value...]`` or ``gen[-decay][+...]`` started at ``lr0`` (None: the
    workload's default). The engine's own anneal is off (``anneal=None``, as at commit 8373ce5 where
    these runs were made), so the decay is the scheduler's alone; ``+option=value`` sets a HiDLR
    option (a number, a word, None, True or False), e.g. ``hidlr-wsd+shrink=0.25``; ``hidlr+anneal=0.2``
    is the engine's default."""
    head, *extra = name.split("+")
    rule, _, decay_name = head.partition("-")
    decay = DECAYS[decay_name]
    options: dict = {"anneal": None}
    for item in extra:
        key, _, value = item.partition("=")
        if key not in PROTOTYPE_FLAGS:
            named = {"None": None, "True": True, "False": False}
            options[key] = named[value] if value in named else _number_or_word(value)

    def build(wl: Workload, task: Task, spec: RunSpec) -> Setup:
        groups = [{"name": "all", "params": trainable(task.model)}] if rule == "gen" else task.groups
        lr = wl.default_lr if lr0 is None else lr0
        opt = HiDLR(base_optimizer(wl, groups, lr), total_steps=spec.steps, **options)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: decay(min(s, spec.steps) / spec.steps))
        return Setup(opt, probe="separate", lr=lr, after_step=sched.step if decay_name else None)

    return Method(name, "ablation", name, build, takes_lr0=True)


ARMIJO_MULTIPLES = (0.1, 0.01, 0.001)


def decide_from_cut(original, m, self, probe, move, loss0, applied, active, *rest, **kwargs):
    """A refresh's decision (``original``: ``Refresher._decide`` or ``_decide_by_line``) after every
    rate was multiplied by ``m``: the fits see the step at the cut rates, and a group whose fit is
    rejected keeps the cut rate."""
    self._estimates = [m * e for e in self._estimates]
    return original(
        self, probe, lambda z: move([m * x for x in z]), loss0, [m * a for a in applied], active, *rest, **kwargs
    )


def patch_armijo() -> None:
    """PROTOTYPE, not in the engine: at the first refresh, when the whole base step at the start
    rates does not lower the probe loss (an Armijo test at multiple 1), the rates are first cut to
    the largest multiple in :data:`ARMIJO_MULTIPLES` whose step does; the refresh then fits and
    decides from there as usual (a group whose fit is rejected keeps the cut rate). One more probe
    forward at the first refresh, up to four (not counted in the refresh record)."""
    from hidlr.optim.refresh import Refresher

    def wrap(original):
        def decide(self, probe, move, loss0, applied, active, *rest, **kwargs):
            if self._refreshes != 0:
                return original(self, probe, move, loss0, applied, active, *rest, **kwargs)
            ones = [1.0 if a else 0.0 for a in active]
            move(ones)
            m = 1.0
            if not bool(self._call_probe(probe) < loss0):
                for c in ARMIJO_MULTIPLES:
                    move([c * x for x in ones])
                    if bool(self._call_probe(probe) < loss0):
                        m = c
                        break
            if m == 1.0:
                return original(self, probe, move, loss0, applied, active, *rest, **kwargs)
            return decide_from_cut(original, m, self, probe, move, loss0, applied, active, *rest, **kwargs)

        return decide

    Refresher._decide = wrap(Refresher._decide)
    Refresher._decide_by_line = wrap(Refresher._decide_by_line)


TREND_CUTS: list[tuple[int, float]] = []  # (step, loss ratio) of every cut, for the run's log


def patch_trend_cut(tol: float, cut: float = 0.5) -> None:
    """PROTOTYPE, not in the engine (round 7 of ``docs/diagnosis.md``): when the probe loss at the
    unmoved weights rose since the last refresh by more than ``tol`` times the progress so far (the
    first refresh's loss minus the last one's, at least a tenth of the first), every rate is first
    multiplied by ``cut``; the refresh then fits and decides from there as usual (a group whose fit
    is rejected keeps the cut rate). The one-step Newton rate along the optimizer's own update
    follows a rate that is too large (the edge of stability), so the fits cannot see it; a rising
    loss can. No extra probe forwards."""
    from hidlr.optim.refresh import Refresher

    def wrap(original):
        def decide(self, probe, move, loss0, applied, active, *rest, **kwargs):
            if not self.history:
                return original(self, probe, move, loss0, applied, active, *rest, **kwargs)
            first, last = self.history[0]["loss"], self.history[-1]["loss"]
            scale = max(abs(first - last), 0.1 * abs(first))  # the progress so far (losses may be negative)
            rise = (float(loss0) - last) / scale if scale > 0 else 0.0
            if rise <= tol:
                return original(self, probe, move, loss0, applied, active, *rest, **kwargs)
            TREND_CUTS.append((self._t, rise))
            return decide_from_cut(original, cut, self, probe, move, loss0, applied, active, *rest, **kwargs)

        return decide

    Refresher._decide = wrap(Refresher._decide)
    Refresher._decide_by_line = wrap(Refresher._decide_by_line)


LOOKBACK: dict = {"task": None, "batch": None, "crn": None, "prev": None, "cut": None}


def patch_lookback_cut(tol: float, cut: float = 0.5) -> None:
    """PROTOTYPE, not in the engine (round 17 of ``docs/diagnosis.md``): at a refresh, before
    anything moves, the previous refresh's probe batch is evaluated again at the current weights
    (one more forward). When its loss rose over the period by more than ``tol`` times its absolute
    value then (``tol = 1``: a positive loss at least doubled), every rate is first multiplied by
    ``cut``; the refresh then fits and decides from there (a group whose fit is rejected keeps the
    cut rate). Round 7's trend cut compared the losses of two different batches, whose difference
    is mostly the batches'; the same batch twice measures only what the period's steps did to it.
    A loss that rises on a batch the run has trained on is the sign of a rate past the edge of
    stability, which the fits along the update cannot see (finding 2)."""
    from hidlr.bench.lr import runner
    from hidlr.optim.refresh import Refresher
    from hidlr.probes import probe_context

    make_probe = runner.make_probe

    def recording_make_probe(task, batch, mode, probe_gen, crn_seed):
        probe = make_probe(task, batch, mode, probe_gen, crn_seed)
        seed = crn_seed if task.stochastic else None

        def recorded():
            value = probe()
            LOOKBACK.update(task=task, crn=seed)
            # the batch the runner's probe cached at its first call (the same on every call of one step)
            cache = probe.__closure__[probe.__code__.co_freevars.index("cache")].cell_contents
            LOOKBACK["batch"] = cache[0]
            return value

        return recorded

    runner.make_probe = recording_make_probe
    original_refresh = Refresher._refresh

    def refresh(self, probe, *args, **kwargs):
        LOOKBACK["cut"] = None
        prev, task = LOOKBACK["prev"] if self._refreshes else None, LOOKBACK["task"]
        if prev is not None and task is not None:
            batch, seed, then = prev
            with torch.no_grad(), probe_context(task.model, eval_mode=False, seed=seed):
                now = float(task.loss(task.model, batch))
            if now - then > tol * abs(then):
                LOOKBACK["cut"] = cut
                TREND_CUTS.append((self._t, now / then if then else math.inf))
        return original_refresh(self, probe, *args, **kwargs)

    def wrap(original):
        def decide(self, probe, move, loss0, applied, active, *rest, **kwargs):
            LOOKBACK["prev"] = (LOOKBACK["batch"], LOOKBACK["crn"], float(loss0))
            if LOOKBACK["cut"] is None:
                return original(self, probe, move, loss0, applied, active, *rest, **kwargs)
            return decide_from_cut(
                original, LOOKBACK["cut"], self, probe, move, loss0, applied, active, *rest, **kwargs
            )

        return decide

    Refresher._refresh = refresh
    Refresher._decide = wrap(Refresher._decide)
    Refresher._decide_by_line = wrap(Refresher._decide_by_line)


UNMEASURABLE = "loss does not change measurably"


def patch_unmeasurable_cut(cut: float) -> None:
    """PROTOTYPE, not in the engine (round 18 of ``docs/diagnosis.md``): after the first refresh, a
    group whose fit is rejected because the probe loss does not change measurably along its update
    (slope and curvature both below the loss's rounding) is cut to ``cut`` times its rate (through
    the clip and the smoothing, as an accepted group whose target that is), where the engine keeps
    its rate. Once the training batches are fitted to the loss's rounding, a step changes nothing
    the probe can measure, and Adam's normalised steps still move the weights by about the rate:
    late in long runs the rates then stay where the growth left them (round 17's trace)."""
    from hidlr.optim import rules
    from hidlr.optim.refresh import Refresher

    original = Refresher._settle

    def settle(self, decisions, loss0, forwards, scale):
        if self._refreshes:
            out = []
            for k, d in enumerate(decisions):
                if not d.accepted and d.estimate > 0 and UNMEASURABLE in (d.reason or ""):
                    factor = rules.momentum_factor(self._momentum(k), self.rules.horizon)
                    d = dataclasses.replace(d, accepted=True, reason=None, newton_rate=d.estimate * cut / factor)
                out.append(d)
            decisions = out
        return original(self, decisions, loss0, forwards, scale)

    Refresher._settle = settle


def patch_grow_window(window: float) -> None:
    """The engine's ``RuleConfig.grow_window`` (rates may grow during this fraction of a known step
    budget, or until they arrive) set to ``window`` for every run: it is a rule field, not a
    constructor option (round 19 of ``docs/diagnosis.md``; round 3 chose 0.25 on seeds 0-2)."""
    from hidlr.optim import schedule

    original = schedule.may_grow
    schedule.may_grow = lambda config, t, arrived: original(dataclasses.replace(config, grow_window=window), t, arrived)


def patch_pooled_shrink() -> None:
    """PROTOTYPE, not in the engine (round 9 of ``docs/diagnosis.md``): ``shrink`` pools the groups'
    log-rates instead of damping each refresh's multiples. The engine's rule,
    ``rate_k * m0 * (m_k / m0) ** shrink``, only slows the way to the per-group Newton rates: its
    fixed point is every group at its own Newton rate (``m_k = m0 = 1``). Here each accepted group's
    target is ``L ** (1 - shrink) * N_k ** shrink``, with ``N_k = rate_k * m_k`` its Newton rate and
    ``L = geomean_j(rate_j) * m0`` the level the one-group line asks for (geometric mean over the
    accepted groups), so the spread of the rates around their level is the spread of the Newton
    rates to the power ``shrink`` (partial pooling), at every refresh and at the fixed point."""
    from hidlr.optim import rules

    def shrink_to_one_group(decisions, active, m0, shrink):
        if m0 is None:
            return list(decisions)
        pooled = [k for k, (d, act) in enumerate(zip(decisions, active)) if act and d.accepted and d.rate > 0]
        if len(pooled) < 2:
            return rules_original(decisions, active, m0, shrink)
        level = math.log(m0) + sum(math.log(decisions[k].rate) for k in pooled) / len(pooled)
        out = list(decisions)
        for k in pooled:
            d = decisions[k]
            target = math.exp((1.0 - shrink) * level + shrink * math.log(d.newton_rate))
            out[k] = dataclasses.replace(d, newton_rate=target)
        return out

    rules_original = rules.shrink_to_one_group
    rules.shrink_to_one_group = shrink_to_one_group


# the rejections a group follows the line for, by --follow choice (None: any)
FOLLOW_REASONS: dict[str, tuple[str, ...] | None] = {
    "any": None,
    "descent": ("not a descent direction",),
    "measured": ("not a descent direction", "not convex along the update", "poor quadratic fit"),
}


def patch_rejected_follow_line(reasons: tuple[str, ...] | None = None) -> None:
    """PROTOTYPE, not in the engine (round 13 of ``docs/diagnosis.md``): a probed group whose own
    fit is rejected (of ``reasons``, or any) takes the one-group line's multiple ``m0`` of the same
    refresh, as an accepted group whose Newton multiple equals the line's would (then the momentum
    correction, the clip and the smoothing as usual), where the engine keeps its rate. A rate too
    large for its group sits at the edge of stability, where its fit is rejected ("not a descent
    direction"): kept, it never comes down while the other groups' rates do."""
    from hidlr.optim import rules

    original = rules.shrink_to_one_group

    def shrink_to_one_group(decisions, active, m0, shrink):
        out = original(decisions, active, m0, shrink)
        if m0 is None:
            return out
        for k, (d, act) in enumerate(zip(out, active)):
            if act and not d.accepted and d.rate > 0 and (reasons is None or (d.reason or "").startswith(reasons)):
                out[k] = dataclasses.replace(d, accepted=True, reason=None, newton_rate=d.rate * m0)
        return out

    rules.shrink_to_one_group = shrink_to_one_group


def patch_start_concave() -> None:
    """The engine's rule after ``restart_schedule`` (:func:`hidlr.optim.rules.grow_concave_descent`:
    a one-group line that descends but is concave grows the rates by the clip's bound, until a
    refresh arrives), switched on at construction, so that it acts from the run's first step."""
    original = HiDLR.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._growing = True

    HiDLR.__init__ = init


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--lr0", nargs="+", type=float, default=[], help="start rates besides the default")
    ap.add_argument("--no-default", action="store_true", help="skip the workload's default start rate")
    ap.add_argument("--workloads", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--armijo", action="store_true", help="the first-refresh Armijo prototype (names get +armijo)")
    ap.add_argument("--grow-concave", action="store_true", help="the concave-line prototype (names get +growconcave)")
    ap.add_argument("--until-arrived", action="store_true", help="with --grow-concave: only until the rates arrive")
    ap.add_argument(
        "--start-concave",
        action="store_true",
        help="the engine's concave-descent growth of a restart, on from the first step (+startconcave)",
    )
    ap.add_argument("--travel-direction", choices=["cuts", "both"], help="the travel-direction prototype (+traveldir)")
    ap.add_argument("--trend-cut", type=float, help="the loss-trend prototype with this tolerance (+trend=TOL)")
    ap.add_argument("--pool", action="store_true", help="the pooled-shrink prototype (names get +pool)")
    ap.add_argument("--grow-window", type=float, help="the engine's grow_window for every run (+growwindow=F)")
    ap.add_argument("--unmeasurable-cut", type=float, help="the unmeasurable-fit cut prototype (+unmeasurable=CUT)")
    ap.add_argument("--lookback", type=float, help="the look-back cut prototype with this tolerance (+lookback=TOL)")
    ap.add_argument(
        "--follow",
        choices=list(FOLLOW_REASONS),
        help="rejected groups follow the line: any rejection (+follow), not a descent direction "
        "(+followdescent), a measured fit that is not convex, not descending or poor (+followmeasured)",
    )
    ap.add_argument("--reprobe", type=float, help="the re-probe prototype at this span (+reprobe=SCALE)")
    ap.add_argument("--reprobe-reasons", choices=list(REPROBE_REASONS), default="shape")
    ap.add_argument(
        "--lock-ratios", type=float, help="the ratio-lock prototype, from this share of the budget (+lockratios=F)"
    )
    ap.add_argument("--full-early", type=float, help="full mode in this share of the budget (+fullearly=F)")
    ap.add_argument("--pool-agree", type=float, help="the pool-when-agreeing prototype (+poolagree=THRESHOLD)")
    a = ap.parse_args()
    if a.pool_agree is not None:
        patch_pool_when_agreeing(a.pool_agree)
        a.variants = [f"{v}+poolagree={a.pool_agree:g}" for v in a.variants]
    if a.full_early is not None:
        patch_full_early(a.full_early)
        a.variants = [f"{v}+fullearly={a.full_early:g}" for v in a.variants]
    if a.lock_ratios is not None:
        patch_lock_ratios(a.lock_ratios)
        a.variants = [f"{v}+lockratios" + (f"={a.lock_ratios:g}" if a.lock_ratios else "") for v in a.variants]
    if a.reprobe is not None:
        patch_reprobe(a.reprobe, REPROBE_REASONS[a.reprobe_reasons])
        tag = "" if a.reprobe_reasons == "shape" else a.reprobe_reasons
        a.variants = [f"{v}+reprobe{tag}={a.reprobe:g}" for v in a.variants]
    if a.grow_window is not None:
        patch_grow_window(a.grow_window)
        a.variants = [f"{v}+growwindow={a.grow_window:g}" for v in a.variants]
    if a.unmeasurable_cut is not None:
        patch_unmeasurable_cut(a.unmeasurable_cut)
        a.variants = [f"{v}+unmeasurable={a.unmeasurable_cut:g}" for v in a.variants]
    if a.lookback is not None:
        patch_lookback_cut(a.lookback)
        a.variants = [f"{v}+lookback={a.lookback:g}" for v in a.variants]
    if a.follow:
        patch_rejected_follow_line(FOLLOW_REASONS[a.follow])
        a.variants = [f"{v}+follow" + ("" if a.follow == "any" else a.follow) for v in a.variants]
    if a.pool:
        patch_pooled_shrink()
        a.variants = [f"{v}+pool" for v in a.variants]
    if a.trend_cut is not None:
        patch_trend_cut(a.trend_cut)
        a.variants = [f"{v}+trend={a.trend_cut:g}" for v in a.variants]
    if a.travel_direction:
        patch_travel_direction(cuts_only=a.travel_direction == "cuts")
        a.variants = [f"{v}+traveldir" + ("" if a.travel_direction == "cuts" else "2") for v in a.variants]
    if a.grow_concave:
        patch_grow_concave(until_arrived=a.until_arrived)
        suffix = "+growconcave" + ("+untilarrived" if a.until_arrived else "")
        a.variants = [f"{v}{suffix}" for v in a.variants]
    if a.start_concave:
        patch_start_concave()
        a.variants = [f"{v}+startconcave" for v in a.variants]
    if a.armijo:
        patch_armijo()
        a.variants = [f"{v}+armijo" for v in a.variants]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for w in a.workloads or [wl.name for wl in get_workloads()]:
        wl = get_workloads([w])[0]
        starts = ([] if a.no_default else [None]) + [lr for lr in a.lr0 if lr != wl.default_lr]
        for lr0 in starts:
            for name in a.variants:
                for s in a.seeds:
                    before, reprobed = len(TREND_CUTS), len(REPROBED)
                    run_logged(a.out, w, variant(name, lr0), s, {"lr0": "default" if lr0 is None else lr0})
                    if len(TREND_CUTS) > before:
                        print(f"  trend cuts at steps {[t for t, _ in TREND_CUTS[before:]]}", file=sys.stderr)
                    if len(REPROBED) > reprobed:
                        print(f"  re-probed (step, groups, accepted): {REPROBED[reprobed:]}", file=sys.stderr)


if __name__ == "__main__":
    main()
