"""A Hi-DLR refresh: let the base optimizer step, probe the loss along each group's update, fit,
decide the new rates (:mod:`hidlr.optim.rules`) and set the step's weights with them.

:class:`UpdateLine` keeps the base step's update of the groups that move at a refresh (the one
copy of their weights a refresh holds) and moves them along it in place. :class:`Refresher` is the
refresh half of :class:`~hidlr.HiDLR`. When a probe raises mid-refresh the step is completed at the
current rates (by default: weights back to where the base step put them, up to rounding; nothing
else to keep) or, with ``rollback=True``, undone bitwise from a snapshot
(:mod:`hidlr.optim.rollback`).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from hidlr.distributed import mean_across_ranks, same_on_every_rank
from hidlr.optim import rules, schedule
from hidlr.optim.designs import line_design, pair_design, random_design
from hidlr.optim.guards import ProbeError, probe_sign, probe_value
from hidlr.optim.quadfit import fit_finite_probes
from hidlr.optim.records import RefreshRecord
from hidlr.optim.rollback import restore, snapshot

Probe = Callable[[], Any]

# multiples of the combined Newton step at which the joint line is probed
_JOINT_LINE = (0.5, 1.0, 1.5)


class UpdateLine:
    """The base step's update ``delta_k = w_t - w_{t+1}`` of the groups in ``moving``, and where each
    group sits along it: group k's weights are ``w_t - offset[k] * delta_k`` (1: where the base step
    put them). Made before the base step (a copy of the moving weights), :meth:`capture` after it
    turns the copy into the update in place: one copy of the moving groups' weights in all."""

    def __init__(self, params: list[list[torch.Tensor]], moving: Sequence[bool]) -> None:
        self.params, self.moving = params, list(moving)
        self.deltas = [[p.detach().clone() for p in ps] if m else [] for ps, m in zip(params, moving)]
        self.offset = [1.0] * len(params)

    def capture(self) -> None:
        """After the base step: the copies of ``w_t`` become ``w_t - w_{t+1}``."""
        for ds, ps in zip(self.deltas, self.params):
            if ds:
                torch._foreach_sub_(ds, ps)

    def move(self, target: Sequence[float]) -> None:
        """Put each moving group k at multiple ``target[k]`` of its update (in place, no copies)."""
        for k, ds in enumerate(self.deltas):
            if ds and target[k] != self.offset[k]:
                torch._foreach_add_(self.params[k], ds, alpha=self.offset[k] - target[k])
                self.offset[k] = target[k]


def has_zero_factor(params: Sequence[torch.Tensor]) -> bool:
    """Whether one of ``params`` is a weight matrix (two or more dims) that is all zeros: a factor
    initialised at zero, as LoRA's B is. Along the update of such a run the loss can fall faster
    the farther the step goes (a concave line; LoRA's early steps in the fine-tuning benchmark)
    until the factor has grown, so the first refresh begins a growth phase
    (:func:`rules.grow_concave_descent`; round 25 of ``docs/diagnosis.md``).
    Pretrained or randomly initialised weights have no such factor, and their runs keep the rates
    on a concave line (growing there broke full-model fine-tuning, round 24)."""
    return any(p.dim() >= 2 and p.numel() > 0 and not bool(p.any()) for p in params)


def _grads_key(params: list[list[torch.Tensor]]) -> list[tuple[weakref.ref, int]]:
    """The gradients of ``params`` as they are now: each one's identity and version counter."""
    return [(weakref.ref(p.grad), p.grad._version) for ps in params for p in ps]


def same_grads(key: list[tuple[weakref.ref, int]] | None, params: list[list[torch.Tensor]]) -> bool:
    """Whether the gradients of ``params`` are the very tensors of ``key``, unchanged since."""
    grads = [p.grad for ps in params for p in ps]
    if key is None or len(key) != len(grads):
        return False
    return all(r() is g and g._version == v for (r, v), g in zip(key, grads))


class Refresher:
    """The refresh steps of :class:`~hidlr.HiDLR` (a mixin: it uses the optimizer's state)."""

    def _call_probe(self, probe: Probe) -> torch.Tensor:
        """Evaluate the probe loss at the current weights under ``torch.no_grad``: a 0-d float64
        tensor on the CPU, negated when the groups maximize (:func:`~hidlr.optim.guards.probe_sign`).
        The one place probe losses are read (a hook that averages them across processes belongs here)."""
        with torch.no_grad():
            raw = probe()
        value = probe_value(raw) * self._probe_sign
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            self._loss_eps = max(self._loss_eps, torch.finfo(raw.dtype).eps)
        elif not isinstance(raw, torch.Tensor):
            self._loss_eps = max(self._loss_eps, torch.finfo(torch.get_default_dtype()).eps)
        return mean_across_ranks(value)  # the same on every rank

    def _refresh(
        self,
        probe: Probe,
        params: list[list[torch.Tensor]],
        applied: list[float],
        factors: list[float],
        active: list[bool],
    ) -> None:
        k_groups = len(applied)
        eps = self._loss_eps
        self._probe_sign = probe_sign(self.param_groups)  # flags may have changed since the last refresh
        loss0 = self._call_probe(probe)  # before anything moves: a raising probe changes nothing
        if not bool(torch.isfinite(loss0)):
            self._loss_eps = eps
            raise ProbeError(
                f"probe returned {float(loss0)} at the unmoved weights (step {self._t}), where "
                "the gradient was finite; nothing was changed"
            )
        growth = (self._growth_before, self._growth_low, self._growing)
        phase = (self._travelling, self._arrived)  # set by _settle, before the weights move
        if self._refreshes == 0:  # a run that starts at a zero factor begins in a growth phase
            zero = any(has_zero_factor(params[k]) for k in range(k_groups) if active[k])
            self._growing = self._growing or same_on_every_rank([zero])[0]  # the same on every rank
        # a concave-line growth of this phase overshot: its rates go back (rules.undo_growth)
        undo = self._growth_before is not None and rules.rose_after_growth(float(loss0), self._growth_low)
        travel_now = self.every == "auto" and self._travelling and self._travel_refreshes < rules.TRAVEL_LIMIT
        many = self.rules.max_groups is not None and sum(active) > self.rules.max_groups
        line_only = travel_now or many
        probed = (
            [False] * k_groups
            if line_only
            else schedule.probe_order(active, self._last_probed, self.groups_per_refresh)
        )
        moving = active if line_only else probed  # a refresh by one line moves every active group along it
        line = UpdateLine(params, moving)
        saved = (
            snapshot(self.optimizer, [p for k in range(k_groups) if active[k] for p in params[k]])
            if self.rollback
            else None
        )
        stepped, estimates = False, list(self._estimates)
        arriving = not self._arrived and schedule.arrival_is_free(
            self.rules, self._arrival_refreshes, self._arrival_forwards
        )
        try:
            self._base_step(applied)
            stepped = True
            line.capture()
            cut, cut_forwards = (
                self._backtrack(probe, line.move, loss0, moving)
                if self._refreshes == 0 and self.rules.first_clip is not None
                else (1.0, 0)
            )
            move, probed_at = line.move, applied
            if cut != 1.0:  # the fits start from the cut rates; a rejected group keeps its cut rate
                self._estimates = [cut * e for e in estimates]
                probed_at = [cut * a for a in applied]

                def move(target: Sequence[float]) -> None:
                    line.move([cut * x for x in target])

            if line_only:
                record = self._decide_by_line(probe, move, loss0, probed_at, active, travelling=travel_now)
            else:
                record = self._decide(probe, move, loss0, probed_at, active, probed)
            record = replace(record, forwards=record.forwards + cut_forwards)
            if undo:
                record = replace(record, groups=rules.undo_growth(record.groups, self._growth_before, active))
                self._growing = False
            new = [d.estimate for d in record.groups]
            line.move([new[k] * factors[k] / applied[k] if moving[k] else 1.0 for k in range(k_groups)])
        except BaseException as err:
            self._loss_eps = eps
            self._estimates = estimates
            self._growth_before, self._growth_low, self._growing = growth
            self._travelling, self._arrived = phase
            if saved is not None:
                restore(self.optimizer, saved)  # weights and state bitwise as before the step
            elif stepped:
                line.move([1.0] * k_groups)  # the base step at the current rates, up to rounding
                self._completed_without_refresh(params, err)
            raise
        self._estimates = new
        if not self._growing:  # the phase ended (arrival or an undone growth)
            self._growth_before = None
        elif self._growth_before is not None:
            self._growth_low = min(self._growth_low, float(loss0))
        # counted but not charged to the probe budget that spaces the refreshes: the backtracking test
        # of the first refresh, travel, and the refreshes before the rates first arrive
        # (schedule.arrival_is_free; rounds 20 and 21 of docs/diagnosis.md)
        self._last_forwards = record.forwards - cut_forwards
        self._probe_forwards += record.forwards
        if travel_now:
            self._travel_refreshes += 1
        if arriving:
            self._arrival_refreshes += 1
            self._arrival_forwards += 0 if travel_now else record.forwards
        self._uncredited_forwards += record.forwards if travel_now or arriving else cut_forwards
        self._last_probed = [self._refreshes if probed[k] else self._last_probed[k] for k in range(k_groups)]
        self._refreshes += 1
        self.history.append(record.as_dict())
        if len(self.history) > self.history_size:
            del self.history[: len(self.history) - self.history_size]

    def _completed_without_refresh(self, params: list[list[torch.Tensor]], err: BaseException) -> None:
        """After a probe raised (``rollback=False``): the base step stands at the current rates, so the
        step is counted, the next one refreshes, and a retried ``step`` with these same gradients
        is skipped (:meth:`HiDLR.step`) rather than applying them twice."""
        self._t += 1
        self._next_refresh = self._t
        self._applied_grads = _grads_key(params)
        if hasattr(err, "add_note"):  # Python 3.11+
            err.add_note(
                f"HiDLR: the probe raised during the refresh of step {self._t - 1}; that step was completed "
                "at the current rates (no refresh) and the next step refreshes"
            )

    def _backtrack(
        self, probe: Probe, move: Callable[[Sequence[float]], None], loss0: torch.Tensor, moving: Sequence[bool]
    ) -> tuple[float, int]:
        """The first refresh's Armijo test: when the whole base step at the start rates does not lower
        the probe loss, the largest of :data:`rules.BACKTRACK_CUTS` whose step does (1.0: no cut, also
        when none does). Returns (cut, probe forward passes spent). A start rate far too large does
        its damage in the first steps, before any fit of it can be trusted (``docs/diagnosis.md``,
        rounds 3, 4 and 10)."""
        forwards = 0
        for cut in (1.0, *rules.BACKTRACK_CUTS):
            move([cut if m else 1.0 for m in moving])
            forwards += 1
            if bool(self._call_probe(probe) < loss0):
                return cut, forwards
        return 1.0, forwards

    def _probe_along(
        self, probe: Probe, move: Callable[[Sequence[float]], None], z: torch.Tensor, loss0: torch.Tensor
    ) -> torch.Tensor:
        """Loss changes (J,) at the rows of ``z`` (J, K): multiples of each group's update."""
        losses = []
        for row in z.tolist():
            move(row)
            losses.append(self._call_probe(probe))
        return torch.stack(losses) - loss0 if losses else torch.zeros(0, dtype=torch.float64)

    def _decide_by_line(
        self,
        probe: Probe,
        move: Callable[[Sequence[float]], None],
        loss0: torch.Tensor,
        applied: list[float],
        active: list[bool],
        travelling: bool,
    ) -> RefreshRecord:
        """A refresh along the whole update (every active group at the same multiple of its step),
        every active group taking the line's multiple: a travelling refresh (``RuleConfig.travel``:
        the 3-point line alone) or the one-group rule for many groups (``RuleConfig.max_groups``:
        the probe points, the acceptance and the joint line of a one-group refresh)."""
        cfg = self.rules
        points = rules.ONE_GROUP_LINE if travelling else self.probes
        line = torch.tensor([[si if a else 0.0 for a in active] for si in points], dtype=torch.float64)
        fitted = rules.one_group_line(points, self._probe_along(probe, move, line, loss0))
        span = max(abs(p) for p in points)
        min_r2 = 0.0 if travelling else cfg.min_r2
        multiple = rules.line_multiple(fitted, span, self._resolution(loss0), cfg.max_multiple, min_r2)
        if self._growing:
            if multiple[1] == rules.NO_LINE and self._growth_before is None:  # the phase's first growth
                self._growth_before, self._growth_low = list(self._estimates), float(loss0)
            multiple = rules.grow_concave_descent(multiple, cfg.max_multiple)
        decisions = rules.line_decisions(active, applied, self._estimates, self._names(), multiple)
        forwards, scale = 1 + len(points), None
        if not travelling and cfg.joint and multiple[0] is not None:
            m = min(multiple[0], cfg.max_multiple)
            scale = self._joint_line(probe, move, [m if a else 0.0 for a in active], active, loss0)
            forwards += len(_JOINT_LINE)
            decisions = rules.apply_joint_scale(decisions, scale)
        return self._settle(decisions, loss0, forwards=forwards, scale=scale)

    def _resolution(self, origin: torch.Tensor) -> float:
        """A fitted term below this (loss units) is below the probe loss's rounding."""
        return self.rules.resolution_factor * self._loss_eps * max(abs(float(origin)), 1e-30)

    def _names(self) -> list[str]:
        return [str(g.get("name", k)) for k, g in enumerate(self.param_groups)]

    def _joint_line(
        self,
        probe: Probe,
        move: Callable[[Sequence[float]], None],
        multiples: Sequence[float],
        moving: Sequence[bool],
        origin: torch.Tensor,
    ) -> float | None:
        """Probe the combined step (each moving group at ``multiples`` of its update, the others held
        at the base step) at ``_JOINT_LINE`` of it; the common factor :func:`rules.joint_scale`."""
        line = torch.tensor(
            [[si * ck if moving[k] else 1.0 for k, ck in enumerate(multiples)] for si in _JOINT_LINE],
            dtype=torch.float64,
        )
        y_line = self._probe_along(probe, move, line, origin)
        if not bool(torch.isfinite(y_line).all()):
            warnings.warn(
                f"HiDLR: non-finite loss along the combined step at step {self._t}; all groups keep their rates",
                RuntimeWarning,
                stacklevel=6,
            )
        return rules.joint_scale(_JOINT_LINE, y_line)

    def _settle(
        self,
        decisions: list[Any],
        loss0: torch.Tensor,
        forwards: int,
        scale: float | None,
    ) -> RefreshRecord:
        """Momentum correction, clip and smoothing (:func:`rules.settle`), the travel state, the record."""
        cfg = self.rules
        betas = [self._momentum(k) for k in range(len(decisions))]
        clipped = rules.clipped(decisions, betas, cfg)  # judged by the usual clip, also on the first refresh
        # travel happens only before arrival, while a step budget still lets rates grow (schedule.may_grow)
        self._travelling = cfg.travel and clipped and not self._arrived and self._travel_refreshes < rules.TRAVEL_LIMIT
        arrives = any(d.accepted for d in decisions) and not clipped
        self._arrived = self._arrived or arrives
        self._growing = self._growing and not arrives  # a growth phase ends when it arrives
        if self._refreshes == 0:
            cfg = rules.first_refresh_config(cfg)
        cfg = schedule.growth_config(cfg, self._t, self._arrived)
        decisions = rules.settle(decisions, betas, cfg)
        return RefreshRecord(step=self._t, loss=float(loss0), forwards=forwards, joint_scale=scale, groups=decisions)

    def _decide(
        self,
        probe: Probe,
        move: Callable[[Sequence[float]], None],
        loss0: torch.Tensor,
        applied: list[float],
        active: list[bool],
        probed: list[bool],
    ) -> RefreshRecord:
        """Probe, fit and apply the rules (:mod:`hidlr.optim.rules`); returns the refresh's record.
        Groups not probed stay at the base step's position (multiple 1) throughout."""
        cfg = self.rules
        z = self._design(probed)
        held = [k for k in range(len(probed)) if active[k] and not probed[k]]
        z_moves = z.clone()
        z_moves[:, held] = 1.0
        base = loss0  # the fit's origin: the probed groups unmoved, the others where the base step put them
        if held:
            move([0.0 if probed[k] else 1.0 for k in range(len(probed))])
            base = self._call_probe(probe)
        y = self._probe_along(probe, move, z_moves, base)
        fit, fit_active = fit_finite_probes(z, y, True, probed, full=cfg.mode == "full")
        if any(a and not f for a, f in zip(probed, fit_active)):
            warnings.warn(
                f"HiDLR: non-finite probe loss at step {self._t}; affected groups keep their rates",
                RuntimeWarning,
                stacklevel=5,
            )
        decisions = rules.newton_decisions(
            fit,
            active,
            fit_active,
            applied,
            self._estimates,
            self._names(),
            cfg,
            span=max(abs(m) for m in self.probes),
            resolution=self._resolution(base),
            probed=probed,
        )
        forwards, scale = 1 + bool(held) + len(z), None
        if cfg.shrink is not None and sum(probed) > 1:
            s1 = rules.ONE_GROUP_LINE
            line = torch.tensor(
                [[si if probed[k] else 1.0 for k in range(len(probed))] for si in s1], dtype=torch.float64
            )
            y_one = self._probe_along(probe, move, line, base)
            forwards += len(s1)
            m0 = rules.one_group_multiple(s1, y_one)
            decisions = rules.shrink_to_one_group(decisions, probed, m0, cfg.shrink)
        if cfg.joint and any(d.accepted for d in decisions):
            c = rules.joint_multiples(decisions, probed, cfg.max_multiple)
            scale = self._joint_line(probe, move, c, probed, base)
            forwards += len(_JOINT_LINE)
            decisions = rules.apply_joint_scale(decisions, scale)
        return self._settle(decisions, loss0, forwards, scale)

    def _design(self, active: list[bool]) -> torch.Tensor:
        full = self.rules.mode == "full"
        if self.design == "random":
            n_active = sum(active)
            unknowns = 2 * n_active + (n_active * (n_active - 1) // 2 if full else 0)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._refreshes)
            z = random_design(active, max(len(self.probes) * n_active, unknowns + 1), self.probes, gen)
        else:
            z = line_design(active, self.probes)
        if full:
            z = torch.cat([z, pair_design(active)])
        return z

    def _momentum(self, k: int) -> float:
        """The base optimizer's momentum coefficient for group k (Adam's beta1, SGD's momentum)."""
        g = self.param_groups[k]
        if "betas" in g:
            return float(g["betas"][0])
        return float(g.get("momentum", 0.0) or 0.0)
