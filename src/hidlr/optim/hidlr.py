"""The HiDLR wrapper: any torch optimizer, with each param group's rate chosen from curvature probes."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hidlr.distributed import mean_across_ranks, refuse_sharded_parameters, same_on_every_rank
from hidlr.optim.designs import line_design, pair_design, random_design
from hidlr.optim.quadfit import fit_line, fit_quadratic
from hidlr.optim.rollback import restore, snapshot
from hidlr.optim.rules import propose, smooth
from hidlr.probes import probe_for_step

Probe = Callable[[], Any]

# the joint line probes at most this multiple of a group's current step: far beyond it, moving the
# weights out and back loses their low bits (float32), and the clip bounds the change anyway
_MAX_JOINT_MULTIPLE = 100.0


class ProbeError(RuntimeError):
    """A probe closure returned something that is not a scalar loss."""


class HiDLR(torch.optim.Optimizer):
    """Hessian-informed differential learning rates around a base optimizer.

    Every refresh step, HiDLR lets the base optimizer take its step once, reads each group's update
    direction ``d_k`` from the weight change, evaluates the probe loss at a few points along those
    directions (forward passes under ``torch.no_grad``), fits ``L(w - eta*d) ~ L(w) - b^T eta +
    eta^T A eta / 2`` by least squares and moves each group's rate towards the Newton rate
    (``b_k / A_kk`` in ``mode="diag"``, ``A^-1 b`` in ``mode="full"``). The weights of that step are
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
        probe: default probe closure used when ``step`` gets none.
        seed: seed of the random design.
        check_finite: refuse non-finite gradients before any weight changes (one host sync a step).
        rollback: keep a copy of the base optimizer's state (in host memory) during a refresh so
            that a probe that raises leaves the state exactly, and the weights up to rounding, as
            before the step (costs that copy's host memory while refreshing; without it, a raising probe leaves the
            weights as before the step but the base optimizer's state advanced by one step). A
            probe that raises on its first call (at the unchanged weights) changes nothing at all.

    ``ema=0, clip=None`` (with ``joint`` and ``horizon`` left at None) give the plain Newton rates
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
                 check_finite: bool = True, rollback: bool = True, horizon: float | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"HiDLR wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, HiDLR):
            raise TypeError("HiDLR cannot wrap another HiDLR")
        refuse_sharded_parameters(optimizer)
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
        horizon = (0.0 if raw else 0.5) if horizon is None else float(horizon)
        if not 0.0 <= horizon <= 1.0:
            raise ValueError(f"horizon must be in [0, 1], got {horizon}")
        if max_every is not None and (not isinstance(max_every, int) or max_every < 1):
            raise ValueError(f"max_every must be None or a positive int, got {max_every!r}")
        # Optimizer.__init__ sets up hooks and profiling for whatever torch version is installed; it
        # needs a non-empty parameter list, so it gets a placeholder that is dropped right after.
        super().__init__([torch.zeros(0, requires_grad=True)], {})
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.every, self.mode, self.probes, self.design = every, mode, tuple(points), design
        self.joint, self.ema, self.clip, self.min_r2 = joint, float(ema), clip, float(min_r2)
        self.max_every, self.default_probe, self.seed = max_every, probe, int(seed)
        self.check_finite, self.rollback, self.horizon = check_finite, rollback, float(horizon)
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

    # ------------------------------------------------------------------------------------ step
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
        probe = probe_for_step(self, probe, closure)
        factors = self._factors()
        applied = [e * f for e, f in zip(self._estimates, factors)]
        params = [[p for p in g["params"] if p.grad is not None] for g in self.param_groups]
        active = [applied[k] > 0 and len(params[k]) > 0 for k in range(len(applied))]
        if self.is_refresh_step():
            active = same_on_every_rank(active)  # every rank takes the same probe path
        refresh = self.is_refresh_step() and any(active)
        if refresh and probe is None:
            raise ValueError(f"step {self._t} is a refresh step and needs a probe: call "
                             "opt.step(probe=lambda: loss_fn(model(x), y)), opt.step(closure), or pass probe= "
                             "to HiDLR (hidlr.BatchProbe, hidlr.LatestBatchProbe)")
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
        if last is not None:
            cap = self.max_every or 4 * last["forwards"]
            self._period = min(cap, 2 * self._period)
        self._next_refresh = self._t + self._period

    # --------------------------------------------------------------------------------- refresh
    def _call_probe(self, probe: Probe) -> torch.Tensor:
        with torch.no_grad():
            value = probe()
        value = torch.as_tensor(value)
        if value.numel() != 1:
            raise ProbeError(f"probe must return a scalar loss, got shape {tuple(value.shape)}")
        if value.is_floating_point():
            self._loss_eps = max(getattr(self, "_loss_eps", 0.0), torch.finfo(value.dtype).eps)
        return mean_across_ranks(value.detach().reshape(()).to(torch.float64))  # the same on every rank

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
            z = self._design(active)
            losses = []
            for row in z.tolist():
                move(row)
                losses.append(self._call_probe(probe))
            y = torch.stack(losses) - loss0 if losses else torch.zeros(0, dtype=torch.float64)
            record = self._estimate(z, y, loss0, applied, active)
            if self.joint:
                self._joint_scale(record, move, probe, loss0, active)
            self._targets(record)
            self._smooth(record)
            new = [r["estimate"] for r in record["groups"]]
            move([new[k] * factors[k] / applied[k] if active[k] else 1.0 for k in range(k_groups)])
        except BaseException:
            move([0.0] * k_groups)
            if snap is not None:
                restore(self.optimizer, snap)
            raise
        self._estimates = new
        self.history.append(record)

    def _design(self, active: list[bool]) -> torch.Tensor:
        if self.design == "random":
            n_active = sum(active)
            unknowns = 2 * n_active + (n_active * (n_active - 1) // 2 if self.mode == "full" else 0)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + len(self.history))
            z = random_design(active, max(len(self.probes) * n_active, unknowns + 1), self.probes, gen)
        else:
            z = line_design(active, self.probes)
        if self.mode == "full":
            z = torch.cat([z, pair_design(active)])
        return z

    def _estimate(self, z: torch.Tensor, y: torch.Tensor, loss0: torch.Tensor, applied: list[float],
                  active: list[bool]) -> dict[str, Any]:
        """Fit the probes and propose Newton rates per group (``newton_rate``; None where rejected)."""
        k_groups = len(applied)
        finite = torch.isfinite(y)
        touched_bad = (z[~finite] != 0).any(dim=0) if (~finite).any() else torch.zeros(k_groups, dtype=torch.bool)
        if not bool(torch.isfinite(loss0)):
            touched_bad = torch.ones(k_groups, dtype=torch.bool)
        fit_active = [active[k] and not bool(touched_bad[k]) for k in range(k_groups)]
        if any(a and not f for a, f in zip(active, fit_active)):
            warnings.warn(f"HiDLR: non-finite probe loss at step {self._t}; affected groups keep "
                          "their rates", RuntimeWarning, stacklevel=4)
        mask = torch.tensor(fit_active)
        rows = finite & ((z != 0) & ~mask).logical_not().all(dim=1) if len(z) else finite
        fit = fit_quadratic(z[rows], y[rows], mask, full=self.mode == "full")
        prop = propose(fit, fit_active, self.mode, self.min_r2)
        # Below the loss's rounding, a fitted term is noise. A resolved descent slope with an
        # unresolved curvature puts the minimum far beyond the probes: grow the rate (the clip
        # bounds by how much). With neither resolved, the update does not change the loss.
        resolution = 16 * getattr(self, "_loss_eps", 0.0) * max(abs(float(loss0)), 1e-30)
        span = max(abs(m) for m in self.probes)
        for k in range(k_groups):
            if not fit_active[k] or 0.5 * abs(float(fit.A[k, k])) * span**2 > resolution:
                continue
            if float(fit.b[k]) * span > resolution:
                prop.reason[k], prop.multiple[k] = None, _MAX_JOINT_MULTIPLE
            else:
                prop.reason[k], prop.multiple[k] = "loss does not change measurably along the update", float("nan")
        groups = []
        for k in range(k_groups):
            prev = self._estimates[k]
            reason = prop.reason[k]
            if active[k] and not fit_active[k]:
                reason = "non-finite probe loss"
            elif not active[k]:
                reason = "frozen" if applied[k] == 0 else "no gradients"
            h = applied[k]
            groups.append({"name": self.param_groups[k].get("name", str(k)), "rate": h,
                           "estimate": prev, "newton_rate": prop.multiple[k] * h if reason is None else None,
                           "a": float(fit.A[k, k]) / h**2 if h > 0 else None,
                           "b": float(fit.b[k]) / h if h > 0 else None,
                           "r2": None if math.isnan(float(fit.r2[k])) else float(fit.r2[k]),
                           "accepted": reason is None, "reason": reason})
        return {"step": self._t, "loss": float(loss0), "forwards": 1 + len(z),
                "joint_scale": None, "groups": groups}

    def _joint_scale(self, record: dict[str, Any], move: Callable[[Sequence[float]], None],
                     probe: Probe, loss0: torch.Tensor, active: list[bool]) -> None:
        """Probe along the combined Newton step (accepted groups at their Newton rates, at most
        ``_MAX_JOINT_MULTIPLE`` times their current rate; the others at their current rates) and
        scale the Newton rates by the 1-D Newton step along it when that is below 1: coupled groups
        overshoot together under the per-group rule."""
        groups = record["groups"]
        if not bool(torch.isfinite(loss0)) or not any(g["accepted"] for g in groups):
            return
        c = [(min(g["newton_rate"] / g["rate"], _MAX_JOINT_MULTIPLE) if g["accepted"] else 1.0)
             if active[k] else 0.0 for k, g in enumerate(groups)]
        s = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
        losses = []
        for si in s.tolist():
            move([si * ck if active[k] else 1.0 for k, ck in enumerate(c)])
            losses.append(self._call_probe(probe))
        record["forwards"] += len(s)
        y = torch.stack(losses) - loss0
        scale = None
        if bool(torch.isfinite(y).all()):
            beta, alpha, _ = fit_line(s, y)
            if beta > 0:
                scale = 1.0 if alpha <= 0 else min(1.0, beta / alpha)
        else:
            warnings.warn(f"HiDLR: non-finite loss along the combined step at step {self._t}; "
                          "all groups keep their rates", RuntimeWarning, stacklevel=4)
        record["joint_scale"] = scale
        for g in groups:
            if not g["accepted"]:
                continue
            if scale is None:
                g["accepted"], g["reason"] = False, "combined step not a descent direction"
            else:
                g["newton_rate"] *= scale

    def _momentum(self, k: int) -> float:
        """The base optimizer's momentum coefficient for group k (Adam's beta1, SGD's momentum)."""
        g = self.param_groups[k]
        if "betas" in g:
            return float(g["betas"][0])
        return float(g.get("momentum", 0.0) or 0.0)

    def _targets(self, record: dict[str, Any]) -> None:
        """Each accepted group's target: its Newton rate times the momentum correction, within the
        clip bounds of its current estimate."""
        for k, g in enumerate(record["groups"]):
            if g["accepted"]:
                target = g["newton_rate"] * (1.0 - self._momentum(k)) ** self.horizon
                if self.clip is not None:
                    prev = self._estimates[k]
                    target = min(max(target, self.clip[0] * prev), self.clip[1] * prev)
                g["target"] = target

    def _smooth(self, record: dict[str, Any]) -> None:
        """New estimates: accepted groups move from their estimate towards their target. A
        scheduler's factor then multiplies the estimate, so it is not divided out here."""
        for k, g in enumerate(record["groups"]):
            if g["accepted"]:
                g["estimate"] = smooth(self._estimates[k], g["target"], None, self.ema)
