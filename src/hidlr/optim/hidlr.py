"""The HiDLR wrapper: any torch optimizer, with each param group's rate chosen from curvature probes."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hidlr.optim import rules
from hidlr.optim.designs import line_design, pair_design, random_design
from hidlr.optim.quadfit import fit_finite_probes
from hidlr.optim.records import RefreshRecord
from hidlr.optim.rollback import restore, snapshot
from hidlr.optim.rules import RuleConfig

Probe = Callable[[], Any]

# multiples of the combined Newton step at which the joint line is probed
_JOINT_LINE = (0.5, 1.0, 1.5)


class ProbeError(RuntimeError):
    """A probe closure returned something that is not a scalar loss."""


class HiDLR(torch.optim.Optimizer):
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
            refresh at steps 0, 2, 6, 14, 30, ... (the period doubles after each refresh) until the
            period reaches ``max_every``, then every ``max_every`` steps: fast adaptation early,
            bounded overhead later.
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
        min_r2: smallest accepted coefficient of determination of a group's quadratic fit.
        max_every: longest refresh period under ``every="auto"``; None: 4 times the forward
            passes of the last refresh, which keeps the probes near 8% of the training compute
            (a training step costs about 3 forward passes) whatever the number of groups.
        shrink: hierarchical rates, in [0, 1]: a line along the current combined step gives the
            one-group (GeN) Newton multiple, and each group's multiple is shrunk towards it
            (``m0 * (m_k / m0) ** shrink``; 0: the one-group rule for every group, 1: per-group);
            costs 3 forward passes a refresh (with two or more groups). None: off. "auto"
            (default): 0.5, unless ``ema=0`` and ``clip=None``, then off (see docs/diagnosis.md).
        travel: (default None: on unless ``ema=0`` and ``clip=None``) under ``every="auto"``,
            refresh again at the next step while any group's target is
            cut by the clip (a rate far from where the fit points travels a clip step per step),
            until the first refresh whose targets all lie inside the clip (the rates have arrived);
            from then on the period doubles as usual, so that late growth is not accelerated.
        first_clip: bounds (lo, hi) of the first refresh's change of rate, which is also not
            smoothed: the start rate is a guess, and before training has adapted the curvature to
            it the Newton rate says how far off it is. None: the first refresh is like the others.
        probe: default probe closure used when ``step`` gets none.
        seed: seed of the random design.
        check_finite: refuse non-finite gradients before any weight changes (one host sync a step).
        rollback: keep a copy of the base optimizer's state (in host memory) during a refresh so
            that a probe that raises leaves the state exactly, and the weights up to rounding, as
            before the step (costs that copy's host memory while refreshing; without it, a raising probe leaves the
            weights as before the step but the base optimizer's state advanced by one step). A
            probe that raises on its first call (at the unchanged weights) changes nothing at all.

    ``ema=0, clip=None`` (with ``joint``, ``horizon``, ``shrink`` and ``travel`` left at their
    defaults) give the plain Newton rates
    of the fitted model: ``b_k / A_kk`` (diag) or ``A^-1 b`` (full).

    A scheduler attached to this optimizer multiplies the estimated rates: the rate applied to group k
    is ``estimate_k * group["lr"] / group["initial_lr"]`` (the scheduler's factor). ``group["lr"]``
    therefore keeps the scheduler's value; read the applied rates from :attr:`lrs`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, every: int | str = "auto",
                 mode: str = "diag", probes: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
                 design: str = "lines", joint: bool | None = None, ema: float = 0.3,
                 clip: tuple[float, float] | None = (0.5, 2.0), min_r2: float = 0.9,
                 max_every: int | None = None, probe: Probe | None = None, seed: int = 0,
                 check_finite: bool = True, rollback: bool = True, horizon: float | None = None,
                 shrink: float | str | None = "auto", travel: bool | None = None,
                 first_clip: tuple[float, float] | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"HiDLR wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, HiDLR):
            raise TypeError("HiDLR cannot wrap another HiDLR")
        if mode not in ("diag", "full"):
            raise ValueError(f"mode must be 'diag' or 'full', got {mode!r}")
        if design not in ("lines", "random"):
            raise ValueError(f"design must be 'lines' or 'random', got {design!r}")
        if every != "auto" and not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every must be a positive int or 'auto', got {every!r}")
        points = [float(p) for p in probes]
        if len(set(points)) < 3 or any(p == 0 or not math.isfinite(p) for p in points):
            raise ValueError("probes needs at least 3 distinct, finite, non-zero multiples "
                             f"(2 unknowns per group plus a residual), got {tuple(probes)}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if clip is not None and not (len(clip) == 2 and 0 < clip[0] <= 1.0 <= clip[1]):
            raise ValueError(f"clip must be None or (lo, hi) with 0 < lo <= 1 <= hi, got {clip}")
        raw = ema == 0.0 and clip is None
        joint = (not raw) if joint is None else bool(joint)
        if isinstance(shrink, str) and shrink != "auto":
            raise ValueError(f"shrink must be 'auto', None or in [0, 1], got {shrink!r}")
        shrink = (None if raw else 0.5) if shrink == "auto" else shrink
        travel = (not raw) if travel is None else bool(travel)
        horizon = (0.0 if raw else 0.5) if horizon is None else float(horizon)
        if not 0.0 <= horizon <= 1.0:
            raise ValueError(f"horizon must be in [0, 1], got {horizon}")
        if first_clip is not None and not (len(first_clip) == 2 and 0 < first_clip[0] <= 1.0 <= first_clip[1]):
            raise ValueError(f"first_clip must be None or (lo, hi) with 0 < lo <= 1 <= hi, got {first_clip}")
        if shrink is not None and not 0.0 <= float(shrink) <= 1.0:
            raise ValueError(f"shrink must be None or in [0, 1], got {shrink}")
        if max_every is not None and (not isinstance(max_every, int) or max_every < 1):
            raise ValueError(f"max_every must be None or a positive int, got {max_every!r}")
        # Optimizer.__init__ sets up hooks and profiling for whatever torch version is installed; it
        # needs a non-empty parameter list, so it gets a placeholder that is dropped right after.
        super().__init__([torch.zeros(0, requires_grad=True)], {})
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.rules = RuleConfig(mode=mode, ema=float(ema), clip=None if clip is None else tuple(map(float, clip)),
                                min_r2=float(min_r2), horizon=float(horizon), joint=joint,
                                shrink=None if shrink is None else float(shrink), travel=bool(travel),
                                first_clip=None if first_clip is None else tuple(map(float, first_clip)))
        self.every, self.probes, self.design = every, tuple(points), design
        self.max_every, self.default_probe, self.seed = max_every, probe, int(seed)
        self.check_finite, self.rollback = check_finite, rollback
        self._loss_eps = 0.0  # the rounding unit of the probe's loss dtype (largest seen)
        self._refreshes = 0
        self._travelling = False  # the last refresh's targets were cut by the clip (rules.travel)
        self._arrived = False  # a refresh has had every target inside the clip
        self._estimates = [self._group_lr(g) for g in self.param_groups]
        self._wrap_lrs = list(self._estimates)
        self._t = 0
        self._period = 1
        self._next_refresh = 0
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- queries
    @staticmethod
    def _group_lr(group: dict[str, Any]) -> float:
        lr = group["lr"]
        return float(lr.item() if isinstance(lr, torch.Tensor) else lr)

    def _factors(self) -> list[float]:
        """The scheduler's factor per group: ``group["lr"]`` over its initial value."""
        out = []
        for k, g in enumerate(self.param_groups):
            ref = g.get("initial_lr", self._wrap_lrs[k])
            ref = float(ref.item() if isinstance(ref, torch.Tensor) else ref)
            out.append(self._group_lr(g) / ref if ref != 0 else 0.0)
        return out

    @property
    def lrs(self) -> list[float]:
        """The rate each param group's next step applies (estimate times scheduler factor)."""
        return [e * f for e, f in zip(self._estimates, self._factors())]

    @property
    def estimates(self) -> list[float]:
        """Hi-DLR's current rate estimate per group, before any scheduler factor."""
        return list(self._estimates)

    @property
    def influence(self) -> list[float]:
        """Per group, the loss decrease its fitted quadratic predicts for a step on that group alone,
        ``b_k^2 / (2 a_k)``, averaged over the refreshes so far (see :mod:`hidlr.influence`)."""
        from hidlr.influence.scores import influence_from_history

        return influence_from_history(self.history, len(self.param_groups), max(abs(p) for p in self.probes))

    @property
    def step_count(self) -> int:
        """Number of completed steps."""
        return self._t

    def is_refresh_step(self) -> bool:
        """Whether the next call of :meth:`step` refreshes the rates (and so needs a probe)."""
        return self._t == self._next_refresh

    # ------------------------------------------------------------------------------ delegation
    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "optimizer"):  # the placeholder group of Optimizer.__init__
            return super().add_param_group(param_group)
        self.optimizer.add_param_group(param_group)
        lr = self._group_lr(self.param_groups[-1])
        self._estimates.append(lr)
        self._wrap_lrs.append(lr)

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.optimizer.state_dict(),
                "hidlr": {"estimates": list(self._estimates), "wrap_lrs": list(self._wrap_lrs),
                          "t": self._t, "period": self._period, "next_refresh": self._next_refresh,
                          "refreshes": self._refreshes, "loss_eps": self._loss_eps,
                          "travelling": self._travelling, "arrived": self._arrived,
                          "history": copy.deepcopy(self.history)}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "hidlr"}:
            raise ValueError("not a HiDLR state dict (expected keys 'base' and 'hidlr'); to load a "
                             "bare optimizer's state, use .optimizer.load_state_dict")
        own = state_dict["hidlr"]
        if len(own["estimates"]) != len(self.param_groups):
            raise ValueError(f"state dict has {len(own['estimates'])} groups, optimizer has "
                             f"{len(self.param_groups)}")
        self.optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state
        self._estimates = [float(x) for x in own["estimates"]]
        self._wrap_lrs = [float(x) for x in own["wrap_lrs"]]
        self._t, self._period = int(own["t"]), int(own["period"])
        self._next_refresh = int(own["next_refresh"])
        self.history = copy.deepcopy(own["history"])
        self._refreshes = int(own.get("refreshes", len(self.history)))
        self._loss_eps = float(own.get("loss_eps", 0.0))
        self._travelling = bool(own.get("travelling", False))
        self._arrived = bool(own.get("arrived", False))

    # ------------------------------------------------------------------------------------ step
    def step(self, closure: Callable[[], Any] | None = None, probe: Probe | None = None) -> Any:
        """One optimizer step; on refresh steps (see :meth:`is_refresh_step`) ``probe`` (or the
        default probe) is called under ``torch.no_grad`` and must return the scalar loss at the
        current weights, the same value for the same weights (a fixed batch, no dropout noise)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        probe = probe if probe is not None else self.default_probe
        factors = self._factors()
        applied = [e * f for e, f in zip(self._estimates, factors)]
        params = [[p for p in g["params"] if p.grad is not None] for g in self.param_groups]
        active = [applied[k] > 0 and len(params[k]) > 0 for k in range(len(applied))]
        refresh = self.is_refresh_step() and any(active)
        if refresh and probe is None:
            raise ValueError(f"step {self._t} is a refresh step and needs a probe: call "
                             "opt.step(probe=lambda: loss_fn(model(x), y)) or pass probe= to HiDLR")
        with torch.no_grad():
            if self.check_finite:
                self._check_gradients(params)
            if refresh:
                self._refresh(probe, params, applied, factors, active)
            else:
                self._base_step(applied)
        if self.is_refresh_step():
            self._schedule_next(refreshed=refresh)
        self._t += 1
        return loss

    def _check_gradients(self, params: list[list[torch.Tensor]]) -> None:
        grads = [p.grad for ps in params for p in ps]
        if not grads:
            return
        if bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            return
        for k, ps in enumerate(params):
            for i, p in enumerate(ps):
                if not bool(torch.isfinite(p.grad).all()):
                    name = self.param_groups[k].get("name", k)
                    raise FloatingPointError(
                        f"non-finite gradient in param group {name!r}, parameter {i} (shape "
                        f"{tuple(p.shape)}) at step {self._t}; nothing was changed")

    def _base_step(self, applied: list[float]) -> None:
        """The base optimizer's step at the applied rates; ``group["lr"]`` keeps the scheduler's value."""
        kept = [g["lr"] for g in self.param_groups]
        for g, r in zip(self.param_groups, applied):
            g["lr"] = r
        try:
            self.optimizer.step()
        finally:
            for g, v in zip(self.param_groups, kept):
                g["lr"] = v

    def _schedule_next(self, refreshed: bool) -> None:
        if self.every != "auto":
            self._next_refresh = self._t + int(self.every)
            return
        last = self.history[-1] if refreshed and self.history else None
        if last is not None and self._travelling:
            self._period = 1
        elif last is not None:
            self._period = rules.next_period(self._period, last["forwards"], self.max_every)
        self._next_refresh = self._t + self._period

    # --------------------------------------------------------------------------------- refresh
    def _call_probe(self, probe: Probe) -> torch.Tensor:
        with torch.no_grad():
            value = probe()
        value = torch.as_tensor(value)
        if value.numel() != 1:
            raise ProbeError(f"probe must return a scalar loss, got shape {tuple(value.shape)}")
        if value.is_floating_point():
            self._loss_eps = max(self._loss_eps, torch.finfo(value.dtype).eps)
        return value.detach().reshape(()).to(torch.float64)

    def _refresh(self, probe: Probe, params: list[list[torch.Tensor]], applied: list[float],
                 factors: list[float], active: list[bool]) -> None:
        k_groups = len(applied)
        loss0 = self._call_probe(probe)  # before anything moves: a raising probe changes nothing
        deltas = [[p.detach().clone() for p in params[k]] if active[k] else [] for k in range(k_groups)]
        snap = snapshot(self.optimizer) if self.rollback else None
        self._base_step(applied)
        offset = [1.0] * k_groups  # weights of group k are w_t - offset[k] * delta_k

        def move(target: Sequence[float]) -> None:
            for k in range(k_groups):
                if active[k] and target[k] != offset[k]:
                    torch._foreach_add_(params[k], deltas[k], alpha=offset[k] - target[k])
                    offset[k] = target[k]

        try:
            for k in range(k_groups):
                if active[k]:
                    torch._foreach_sub_(deltas[k], params[k])  # delta_k = w_t - w_{t+1}
            record = self._decide(probe, move, loss0, applied, active)
            new = [d.estimate for d in record.groups]
            move([new[k] * factors[k] / applied[k] if active[k] else 1.0 for k in range(k_groups)])
        except BaseException:
            move([0.0] * k_groups)
            if snap is not None:
                restore(self.optimizer, snap)
            raise
        self._estimates = new
        self._refreshes += 1
        self.history.append(record.as_dict())

    def _probe_along(self, probe: Probe, move: Callable[[Sequence[float]], None], z: torch.Tensor,
                     loss0: torch.Tensor) -> torch.Tensor:
        """Loss changes (J,) at the rows of ``z`` (J, K): multiples of each group's update."""
        losses = []
        for row in z.tolist():
            move(row)
            losses.append(self._call_probe(probe))
        return torch.stack(losses) - loss0 if losses else torch.zeros(0, dtype=torch.float64)

    def _decide(self, probe: Probe, move: Callable[[Sequence[float]], None], loss0: torch.Tensor,
                applied: list[float], active: list[bool]) -> RefreshRecord:
        """Probe, fit and apply the rules (:mod:`hidlr.optim.rules`); returns the refresh's record."""
        cfg = self.rules
        z = self._design(active)
        y = self._probe_along(probe, move, z, loss0)
        loss0_finite = bool(torch.isfinite(loss0))
        fit, fit_active = fit_finite_probes(z, y, loss0_finite, active, full=cfg.mode == "full")
        if any(a and not f for a, f in zip(active, fit_active)):
            warnings.warn(f"HiDLR: non-finite probe loss at step {self._t}; affected groups keep "
                          "their rates", RuntimeWarning, stacklevel=4)
        resolution = cfg.resolution_factor * self._loss_eps * max(abs(float(loss0)), 1e-30)
        names = [str(g.get("name", k)) for k, g in enumerate(self.param_groups)]
        decisions = rules.newton_decisions(fit, active, fit_active, applied, self._estimates, names, cfg,
                                           span=max(abs(m) for m in self.probes), resolution=resolution)
        forwards, scale = 1 + len(z), None
        if cfg.shrink is not None and loss0_finite and sum(active) > 1:
            s1 = torch.tensor(rules.ONE_GROUP_LINE, dtype=torch.float64)
            mask = torch.tensor([1.0 if a else 0.0 for a in active], dtype=torch.float64)
            y_one = self._probe_along(probe, move, s1.unsqueeze(1) * mask, loss0)
            forwards += len(s1)
            m0 = rules.one_group_multiple(s1, y_one)
            decisions = rules.shrink_to_one_group(decisions, active, m0, cfg.shrink)
        if cfg.joint and loss0_finite and any(d.accepted for d in decisions):
            c = rules.joint_multiples(decisions, active, cfg.max_multiple)
            s = torch.tensor(_JOINT_LINE, dtype=torch.float64)
            y_line = self._probe_along(probe, move, s.unsqueeze(1) * torch.tensor(c, dtype=torch.float64), loss0)
            forwards += len(s)
            if not bool(torch.isfinite(y_line).all()):
                warnings.warn(f"HiDLR: non-finite loss along the combined step at step {self._t}; "
                              "all groups keep their rates", RuntimeWarning, stacklevel=4)
            scale = rules.joint_scale(s, y_line)
            decisions = rules.apply_joint_scale(decisions, scale)
        betas = [self._momentum(k) for k in range(len(applied))]
        clipped = rules.clipped(decisions, betas, cfg)  # judged by the usual clip, also on the first refresh
        self._travelling = cfg.travel and clipped and not self._arrived
        self._arrived = self._arrived or (any(d.accepted for d in decisions) and not clipped)
        if self._refreshes == 0:
            cfg = rules.first_refresh_config(cfg)
        decisions = rules.settle(decisions, betas, cfg)
        return RefreshRecord(step=self._t, loss=float(loss0), forwards=forwards, joint_scale=scale,
                             groups=decisions)

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
