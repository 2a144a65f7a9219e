"""The HiDLR wrapper: any torch optimizer, with each param group's rate chosen from curvature probes."""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from hidlr.distributed import refuse_sharded_parameters, same_on_every_rank
from hidlr.optim import checkpoint, schedule
from hidlr.optim.guards import (
    check_gradients,
    check_rates,
    check_unique_params,
    probe_sign,
    rates_as_floats,
    with_gradients,
)
from hidlr.optim.options import check_options, check_total_steps
from hidlr.optim.refresh import Refresher, same_grads
from hidlr.optim.rules import RuleConfig
from hidlr.optim.step_hooks import hooks_when_used
from hidlr.probes import probe_for_step

Probe = Callable[[], Any]


class HiDLR(Refresher, torch.optim.Optimizer):
    """Hessian-informed differential learning rates around a base optimizer.

    Every refresh step, HiDLR lets the base optimizer take its step once, reads each group's update
    direction ``d_k`` from the weight change, evaluates the probe loss at a few points along those
    directions (forward passes under ``torch.no_grad``), fits ``L(w - eta*d) ~ L(w) - b^T eta +
    eta^T A eta / 2`` by least squares and moves each group's rate towards the Newton rate
    (``b_k / A_kk`` in ``mode="diag"``; in ``mode="full"`` the minimiser of the fitted quadratic over
    non-negative rates, ``A^-1 b`` when that is positive). The weights of that step are
    then set with the new rates, so the base optimizer's state advances exactly once per step.

    Args:
        optimizer: the base optimizer; each of its param groups is one Hi-DLR group, and its ``lr``
            is the group's starting rate (0 freezes the group: no updates, no probes).
        every: refresh period in steps (steps 0, every, 2*every, ... refresh), or ``"auto"``:
            refresh at steps 0, 2, 6, 14, 30, ... (the period doubles after each refresh) up to
            ``max_every``; fast adaptation early, bounded overhead later.
        mode: ``"diag"`` (one Newton step per group, O(K) probes) or ``"full"`` (cross terms too,
            O(K^2) probes, for small K).
        probes: multiples of the current rate at which each group is probed (at least 3 distinct
            non-zero values, so that every fit has a residual).
        design: ``"lines"`` (each group alone) or ``"random"`` (all groups at once, random multiples).
        joint: after the per-group rates are chosen, probe once more along the combined step and
            scale all rates down together when the step would overshoot (coupled groups overshoot
            together under the diagonal rule). None (default): on unless ``ema=0`` and
            ``clip=None``.
        horizon: momentum correction. Momentum keeps moving along the current update for about
            ``1 / (1 - beta)`` steps (``beta``: Adam's beta1 or SGD's momentum), so the one-step
            Newton rate overshoots; the Newton rate is multiplied by ``(1 - beta) ** horizon``.
            0 turns it off, 1 assumes the whole carry; None (default): 0.5, the most robust in our
            measurements, unless ``ema=0`` and ``clip=None``, then 0.
        ema: smoothing of rates across refreshes (0 turns it off).
        clip: bounds (lo, hi) on the change of a rate per refresh, as multiples; None turns it off.
        min_r2: smallest accepted coefficient of determination of a group's quadratic fit, in [0, 1].
        max_every: longest refresh period under ``every="auto"``. None (default): a probe budget
            decides (:func:`hidlr.optim.schedule.next_refresh`): the period grows to where the probes
            take ``rules.probe_share`` of the training compute, and a refresh waits while the probe
            forwards so far exceed ``rules.probe_credit`` plus that share, so the overhead does not
            grow with the number of groups (larger K: each group is refreshed less often). The
            refreshes before the rates first arrive (every target inside the clip; at most
            ``rules.TRAVEL_LIMIT`` of them, and with ``total_steps`` only while they have spent
            less than the run's whole probe share) are not charged to it.
        groups_per_refresh: at most this many groups are probed at one refresh, those probed
            longest ago first; the others keep their rates until their turn. None: all.
        shrink: hierarchical rates, in [0, 1]: a line along the current combined step gives the
            one-group (GeN) Newton multiple, and each group's multiple is shrunk towards it
            (``m0 * (m_k / m0) ** shrink``; 0: the one-group rule for every group, 1: per-group);
            costs 3 forward passes a refresh (with two or more probed groups). None: off. "auto"
            (default): 0.5, unless ``ema=0`` and ``clip=None``, then off (see docs/diagnosis.md).
        travel: under ``every="auto"``, while the clip cuts some group's target and no refresh has yet had every target
            inside it, refresh again at the next step, probing only the one-group line along the
            whole update (4 forward passes; every group takes the line's multiple of its rate),
            at most ``rules.TRAVEL_LIMIT`` times; these refreshes do not use up the probe budget.
            A start rate far from the fitted one travels a clip step per step instead of per
            refresh. None (default): on unless ``ema=0`` and ``clip=None`` (see docs/diagnosis.md).
        first_clip: bounds (lo, hi) of the first refresh's change of rate, which is also not
            smoothed: the start rate is a guess, and before training has adapted the curvature to
            it the Newton rate says how far off it is. With a first clip the first refresh also
            backtracks: when the whole base step at the start rates does not lower the probe loss,
            every rate is first cut by 10, 100 or 1000 (the smallest cut whose step does; one to
            four more forward passes) and the fits start from there. ``"auto"`` (default):
            (0.01, 2.0), so a start rate up to 100x too large is cut at once (the first steps of a
            too large rate do the most damage), unless ``ema=0`` and ``clip=None``, then None;
            None: the first refresh is like the others.
        max_groups: with more groups moving than this, every refresh probes only the one-group
            line along the whole update (8 forward passes; every group takes its multiple of its
            rate: the one-group rule, GeN) instead of each group's own line: under the probe budget
            each group's own fit would come too rarely. ``"auto"`` (default): 8, unless ``ema=0``
            and ``clip=None``, then None; None: always per group (influence scores need the
            per-group fits: :mod:`hidlr.influence`).
        total_steps: the run's step budget, when known (as for ``OneCycleLR``): rates may then
            grow only during its first quarter (``rules.grow_window``) or until they first settle
            (a refresh with every target inside the clip); afterwards a refresh may
            only lower them, since late in training the curvature along the update fades and the
            one-step Newton rate keeps growing where the held-out loss no longer gains from it
            (``docs/diagnosis.md``, round 3). None (default): rates may grow throughout. Settable
            later (:attr:`total_steps`); the Lightning and Transformers callbacks set it from the
            trainer's step budget when it is None.
        anneal: with ``total_steps``, the final fraction of it over which the applied rates fall
            linearly to 0 (a factor on every rate, like a scheduler's; :func:`schedule.anneal_factor`).
            The Newton rate is the best rate for the next step; near the end of a run a smaller
            one ends lower (``docs/diagnosis.md``, round 4). ``"auto"`` (default): 0.2, unless
            ``ema=0`` and ``clip=None``, then None; None: no anneal. Steps past ``total_steps``
            apply rate 0 and warn.
        probe: default probe closure used when ``step`` gets none.
        seed: seed of the random design (0 <= seed < 2**32).
        check_finite: when to refuse non-finite gradients (``FloatingPointError`` naming the group,
            before any weight changes). True (default): on every step (one fused pass over the
            gradients and one host read per step; sparse gradients are checked on their stored
            values), so a NaN never reaches the weights. ``"refresh"``: on refresh steps only,
            where the rates would otherwise be fitted to them; the other steps hand the gradients
            to the base optimizer as they are, as the bare optimizer would take them (cheaper
            steps; see ``docs/guide/faults.md``). False: never.
        rollback: what a probe that raises in the middle of a refresh leaves behind (the error is
            raised either way). False (default): the step is completed at the current rates, as
            if it were not a refresh step: the weights go back to where the base step put them
            (up to rounding, moved back along the update), the optimizer state is the one that step
            left, the step is counted and the next step refreshes; calling ``step`` again with the
            same, unchanged gradients (a retry) then does nothing and warns, rather than applying
            them twice. Memory while refreshing: one copy of the weights of the groups that move
            (their update; at most one copy of the parameters), nothing else. True: weights and
            optimizer state are put back bitwise as before the step, from copies kept in host
            memory while a refresh runs: one of the moving weights and one of the optimizer state
            (for Adam three parameter copies, on top of the update). A probe that raises on its
            first call (at the unchanged weights) changes nothing either way.
        history_size: how many refresh records :attr:`history` keeps (the oldest are dropped);
            :attr:`refresh_count` counts them all.

    A probe must return a finite real scalar (a tensor of one element or a number); anything else
    raises :class:`ProbeError` naming what came back: at the first call with nothing changed, later
    like a probe that raises (see ``rollback``). Rates must be finite
    and non-negative: a negative rate (by hand or from a scheduler) raises ValueError before the
    step. A parameter may appear once, in one group. With ``maximize=True`` in every group of the
    base optimizer the probe returns the objective being maximized: Hi-DLR fits its negation (which
    :attr:`history` records as the loss); groups that differ in ``maximize`` are refused.

    ``ema=0, clip=None`` (with ``joint``, ``horizon`` and ``shrink`` at their defaults)
    give the plain Newton rates
    of the fitted model: ``b_k / A_kk`` (diag) or ``A^-1 b`` (full).

    A scheduler attached to this optimizer multiplies the estimated rates: the rate applied to group k
    is ``estimate_k * group["lr"] / group["initial_lr"]`` (the scheduler's factor). ``group["lr"]``
    therefore keeps the scheduler's value; read the applied rates from :attr:`lrs`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        every: int | str = "auto",
        mode: str = "diag",
        probes: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
        design: str = "lines",
        joint: bool | None = None,
        ema: float = 0.3,
        clip: tuple[float, float] | None = (0.5, 2.0),
        min_r2: float = 0.9,
        max_every: int | None = None,
        probe: Probe | None = None,
        seed: int = 0,
        check_finite: bool | str = True,
        rollback: bool = False,
        horizon: float | None = None,
        history_size: int = 500,
        groups_per_refresh: int | None = 8,
        shrink: float | str | None = "auto",
        travel: bool | None = None,
        first_clip: tuple[float, float] | str | None = "auto",
        max_groups: int | str | None = "auto",
        total_steps: int | None = None,
        anneal: float | str | None = "auto",
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"HiDLR wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, HiDLR):
            raise TypeError("HiDLR cannot wrap another HiDLR")
        if isinstance(optimizer, torch.optim.LBFGS):
            raise TypeError(
                "HiDLR cannot wrap LBFGS: it searches its own step length (line_search_fn) and needs a "
                "closure at every step; wrap a first-order optimizer (SGD, Adam, ...)"
            )
        refuse_sharded_parameters(optimizer)
        opts = check_options(
            every=every,
            mode=mode,
            probes=probes,
            design=design,
            joint=joint,
            ema=ema,
            clip=clip,
            min_r2=min_r2,
            max_every=max_every,
            probe=probe,
            seed=seed,
            check_finite=check_finite,
            rollback=rollback,
            horizon=horizon,
            history_size=history_size,
            groups_per_refresh=groups_per_refresh,
            shrink=shrink,
            travel=travel,
            first_clip=first_clip,
            max_groups=max_groups,
            total_steps=total_steps,
            anneal=anneal,
        )
        check_unique_params(optimizer.param_groups)
        probe_sign(optimizer.param_groups)  # refuses mixed maximize flags
        # Optimizer.__init__ sets up hooks and profiling for whatever torch version is installed; it
        # needs a non-empty parameter list, so it gets a placeholder that is dropped right after.
        super().__init__([torch.zeros(0, requires_grad=True)], {})
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.rules = RuleConfig(
            mode=opts["mode"],
            ema=opts["ema"],
            clip=opts["clip"],
            min_r2=opts["min_r2"],
            horizon=opts["horizon"],
            joint=opts["joint"],
            shrink=opts["shrink"],
            travel=opts["travel"],
            first_clip=opts["first_clip"],
            max_groups=opts["max_groups"],
            total_steps=opts["total_steps"],
            anneal=opts["anneal"],
        )
        self.every, self.probes, self.design = opts["every"], opts["probes"], opts["design"]
        self.max_every, self.default_probe, self.seed = opts["max_every"], probe, opts["seed"]
        self.check_finite, self.rollback = opts["check_finite"], opts["rollback"]
        self.history_size = opts["history_size"]
        self._loss_eps = 0.0  # the rounding unit of the probe's loss dtype (largest seen)
        self._probe_sign = 1.0  # -1.0 while the groups maximize (set at each refresh)
        self._refreshes = 0
        self._probe_forwards = 0  # all refreshes' probe forward passes
        self._last_forwards = 0
        self.groups_per_refresh = opts["groups_per_refresh"]
        self._last_probed = [-1] * len(optimizer.param_groups)  # the refresh that last probed each group
        self._travelling = False  # the last refresh's targets were cut by the clip (rules.travel)
        self._arrived = False  # a refresh has had every target inside the clip
        # a phase of concave-line growth (rules.grow_concave_descent), until a refresh arrives or its
        # growth is undone: begun by restart_schedule, or by the first refresh when an active group
        # holds a weight matrix at zero (refresh.has_zero_factor; round 25 of docs/diagnosis.md)
        self._growing = False
        # the rates before the phase's first concave-line growth, and the lowest probe loss since
        # (rules.rose_after_growth); None: no growth in this phase
        self._growth_before: list[float] | None = None
        self._growth_low = math.inf
        self._travel_refreshes = 0  # line-only refreshes so far (RuleConfig.travel)
        self._arrival_refreshes = 0  # uncharged refreshes before the rates first arrived
        self._arrival_forwards = 0  # and their probe forwards, travel's aside (schedule.arrival_is_free)
        # probe forwards that do not count against the probe credit: travel refreshes', those before
        # the rates first arrive, and all those before a restart_schedule
        self._uncredited_forwards = 0
        self._estimates = [self._group_lr(g) for g in self.param_groups]
        self._wrap_lrs = list(self._estimates)
        self._t = 0
        self._period = 1
        self._next_refresh = 0
        self.history: list[dict[str, Any]] = []
        self._applied_grads: Any = None  # the gradients of a step completed after a probe raised
        self._warned_budget: int | None = None  # the total_steps whose end a step has passed (warned once)
        self._applied_cache: tuple[Any, ...] | None = None  # _applied_rates' inputs and result

    # ----------------------------------------------------------------------------------- queries
    @property
    def total_steps(self) -> int | None:
        """The run's step budget (None: unknown); rates may grow during its first ``rules.grow_window``
        and fall to 0 over its last ``rules.anneal``."""
        return self.rules.total_steps

    @total_steps.setter
    def total_steps(self, value: int | None) -> None:
        self.rules = replace(self.rules, total_steps=check_total_steps(value))

    @staticmethod
    def _group_lr(group: dict[str, Any]) -> float:
        return rates_as_floats([group["lr"]])[0]

    def _factors(self) -> list[float]:
        """The factor per group between estimate and applied rate: the scheduler's (``group["lr"]``
        over its initial value; tensor rates read in one transfer, not one host sync per group)
        times the anneal's (:func:`schedule.anneal_factor`)."""
        lrs, inits, floats = [], [], True
        for g, w in zip(self.param_groups, self._wrap_lrs):
            lr, init = g["lr"], g.get("initial_lr", w)
            floats = floats and type(lr) is float and type(init) is float
            lrs.append(lr)
            inits.append(init)
        if not floats:
            vals = rates_as_floats(lrs + inits)
            lrs, inits = vals[: len(lrs)], vals[len(lrs) :]
        tail = schedule.anneal_factor(self.rules, self._t)
        return [tail * lr / i if i != 0 else 0.0 for lr, i in zip(lrs, inits)]

    def _applied_rates(self) -> tuple[list[float], list[float]]:
        """The rate each group's next step applies (estimate times :meth:`_factors`), checked by
        :func:`check_rates`, and the factors. Between refreshes these change only when a scheduler
        or the user sets a group's ``lr`` or the anneal moves, so with float rates the last result
        is reused while its inputs compare equal: a few C-level list comparisons per step instead
        of Python arithmetic and checks per group."""
        groups = self.param_groups
        lrs = [g["lr"] for g in groups]
        inits = [g.get("initial_lr") for g in groups]
        tail = schedule.anneal_factor(self.rules, self._t)
        cached = self._applied_cache
        if (
            cached is not None
            and cached[2] == tail
            and cached[0] == lrs
            and cached[1] == inits
            and cached[3] == self._estimates
            and cached[4] == self._wrap_lrs
        ):
            return list(cached[5]), list(cached[6])  # copies: the caller may change them
        factors = self._factors()
        applied = [e * f for e, f in zip(self._estimates, factors)]
        check_rates(applied, groups, self._t)
        floats = all(type(v) is float for v in lrs) and all(v is None or type(v) is float for v in inits)
        self._applied_cache = (
            (lrs, inits, tail, list(self._estimates), list(self._wrap_lrs), list(applied), list(factors))
            if floats
            else None
        )
        return applied, factors

    @property
    def lrs(self) -> list[float]:
        """The rate each param group's next step applies (estimate times the scheduler's and the
        anneal's factors); 0 for a group whose parameters are all frozen (``requires_grad=False``,
        e.g. by :func:`hidlr.influence.freeze`), which moves nothing. What the framework callbacks log."""
        return [
            e * f if any(p.requires_grad for p in g["params"]) else 0.0
            for e, f, g in zip(self._estimates, self._factors(), self.param_groups)
        ]

    @property
    def estimates(self) -> list[float]:
        """Hi-DLR's current rate estimate per group, before any scheduler factor."""
        return list(self._estimates)

    @property
    def refresh_count(self) -> int:
        """Number of completed refreshes (``history`` keeps the last ``history_size`` of them)."""
        return self._refreshes

    @property
    def influence(self) -> list[float]:
        """Per group, the loss decrease its fitted quadratic predicts for a step on that group alone,
        ``b_k^2 / (2 a_k)``, averaged over the refreshes in :attr:`history` (see :mod:`hidlr.influence`)."""
        from hidlr.influence.scores import influence_from_history

        return influence_from_history(self.history, len(self.param_groups), max(abs(p) for p in self.probes))

    @property
    def step_count(self) -> int:
        """Number of completed steps."""
        return self._t

    def is_refresh_step(self) -> bool:
        """Whether the next call of :meth:`step` refreshes the rates (and so needs a probe)."""
        return self._t == self._next_refresh

    def restart_schedule(self) -> None:
        """Start the refresh schedule over, as for a new phase of the run: the next :meth:`step`
        refreshes, the automatic period restarts at 1, and the probe forwards spent so far no longer
        count against the probe budget. Until a refresh of the new phase has every target inside the
        clip, a one-group line that descends but is concave grows the rates by the clip's bound
        instead of keeping them (:func:`hidlr.optim.rules.grow_concave_descent`), and when the probe
        loss then rises 5% above its lowest since the first such growth, every rate goes back to where
        it was before it (:func:`hidlr.optim.rules.undo_growth`) and the phase ends. Rates, estimates,
        history, step count, step budget and the run's arrival (and with it the budget's growth
        window) stay. :func:`hidlr.influence.freeze` calls it: an influence run's probes over many
        groups would otherwise hold back the refreshes of the few groups left to train, and its
        rates were chosen for all of them."""
        self._next_refresh = self._t
        self._period = 1
        self._uncredited_forwards = self._probe_forwards
        self._growing = True
        self._growth_before, self._growth_low = None, math.inf

    # ------------------------------------------------------------------------------ delegation
    def __getstate__(self) -> dict[str, Any]:
        """The wrapper, base optimizer included, for ``copy.deepcopy`` and pickling
        (``Optimizer.__getstate__`` keeps only defaults, state and groups). Left out, as what belongs
        to this object alone: step hooks and a scheduler's wrapper of ``step`` (as torch leaves them
        out; they call this object), the record of gradients applied after a raising probe (this
        process's tensors), and a default probe that is a plain function (it evaluates the original
        model: give the copy its own). Probe objects (:mod:`hidlr.probes`) and bound methods are
        copied with what they evaluate."""
        state = {k: v for k, v in self.__dict__.items() if k != "step" and not k.startswith("_optimizer_")}
        state["_applied_grads"] = None
        if isinstance(state.get("default_probe"), types.FunctionType):
            state["default_probe"] = None
        return state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "optimizer"):  # the placeholder group of Optimizer.__init__
            return super().add_param_group(param_group)
        params = param_group.get("params") if isinstance(param_group, dict) else None
        if params is not None:
            params = [params] if isinstance(params, torch.Tensor) else list(params)
            check_unique_params(self.param_groups, params)
            param_group = {**param_group, "params": params}
        self.optimizer.add_param_group(param_group)
        try:
            probe_sign(self.param_groups)
        except ValueError:
            self.param_groups.pop()  # as before the call
            raise
        lr = self._group_lr(self.param_groups[-1])
        self._estimates.append(lr)
        self._wrap_lrs.append(lr)
        self._last_probed.append(-1)

    def state_dict(self) -> dict[str, Any]:
        """``{"base": <the base optimizer's state dict>, "hidlr": <format version, configuration and
        running state, the last history_size refresh records>}`` (see :mod:`hidlr.optim.checkpoint`)."""
        return {"base": self.optimizer.state_dict(), "hidlr": checkpoint.build_state(self)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` after validating all of it (nothing changes when it is refused):
        other param groups are an error, other options a warning. Reads the previous format too."""
        checkpoint.load(self, state_dict)

    # ------------------------------------------------------------------------------------ step
    @hooks_when_used
    def step(self, closure: Callable[[], Any] | None = None, probe: Probe | None = None) -> Any:
        """One optimizer step; on refresh steps (see :meth:`is_refresh_step`) ``probe`` (or the
        default probe) is called under ``torch.no_grad`` and must return the scalar loss at the
        current weights, the same value for the same weights (a fixed batch, no dropout noise).
        With neither, a given ``closure`` is the probe: it is re-evaluated like ``LBFGS`` does
        (:class:`hidlr.probes.ClosureProbe`). Under ``torch.distributed`` the probe losses are
        averaged over the ranks (:mod:`hidlr.distributed`)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        due = self.is_refresh_step()
        params: list[list[torch.Tensor]] = []
        grads: list[torch.Tensor] = []
        gathered = due or self._applied_grads is not None  # else the base step alone, after the check
        if gathered:
            params, grads = with_gradients(self.param_groups)
        if self._applied_grads is not None:
            key, self._applied_grads = self._applied_grads, None
            if same_grads(key, params):
                warnings.warn(
                    f"HiDLR: step {self._t - 1} already applied these gradients (its probe raised and the step "
                    "was completed at the current rates); this call does nothing. Compute new gradients "
                    "before the next step",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return loss
        probe = probe_for_step(self, probe, closure)
        budget = self.rules.total_steps
        if self.rules.anneal is not None and budget is not None and self._t >= budget != self._warned_budget:
            self._warned_budget = budget  # once per budget
            warnings.warn(
                f"HiDLR: step {self._t} is past total_steps={budget}, where the anneal has brought "
                "every rate to 0, so this and later steps change nothing; raise total_steps, or pass anneal=None",
                RuntimeWarning,
                stacklevel=3,
            )
        applied, factors = self._applied_rates()
        refresh = False
        if due:
            active = [applied[k] > 0 and len(params[k]) > 0 for k in range(len(applied))]
            active = same_on_every_rank(active)  # every rank takes the same probe path
            refresh = any(active)
        if refresh and probe is None:
            raise ValueError(
                f"step {self._t} is a refresh step and needs a probe: call "
                "opt.step(probe=lambda: loss_fn(model(x), y)), opt.step(closure), or pass probe= "
                "to HiDLR (hidlr.BatchProbe, hidlr.LatestBatchProbe); in Lightning or the Transformers "
                "Trainer, add the HiDLRCallback of hidlr.integrations.lightning / .transformers"
            )
        if self.check_finite is True or (self.check_finite and refresh):
            check_gradients(self.param_groups, self._t, grads if gathered else None)
        if refresh:
            with torch.no_grad():
                self._refresh(probe, params, applied, factors, active)
        else:
            self._base_step(applied)
        if due:
            self._schedule_next(refreshed=refresh)
        self._t += 1
        return loss

    def _base_step(self, applied: list[float]) -> None:
        """The base optimizer's step at the applied rates, without autograd (as for a step of its own
        that lacks ``torch.no_grad``); ``group["lr"]`` keeps the scheduler's value."""
        kept = [g["lr"] for g in self.param_groups]
        for g, r in zip(self.param_groups, applied):
            g["lr"] = r
        grad_mode = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # what no_grad does, without its context object on every step
        try:
            self.optimizer.step()
        finally:
            torch._C._set_grad_enabled(grad_mode)
            for g, v in zip(self.param_groups, kept):
                g["lr"] = v

    def _schedule_next(self, refreshed: bool) -> None:
        if self.every != "auto":
            self._next_refresh = self._t + int(self.every)
            return
        if not refreshed:  # nothing to refresh (all groups frozen or without gradients): look again soon
            self._next_refresh = self._t + self._period
            return
        self._next_refresh, self._period = schedule.next_refresh(
            self._t,
            self._period,
            self._last_forwards,
            self._probe_forwards - self._uncredited_forwards,
            self.max_every,
            self.rules,
            travelling=self._travelling,
        )
