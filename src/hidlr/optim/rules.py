"""From fitted probes to new rates: pure rule functions on plain numbers (spec section 4).

A refresh decides each group's rate in four stages, each a function here:

1. :func:`newton_decisions`: the fitted quadratic's Newton rate per group, or why the group keeps
   its rate (acceptance);
2. :func:`joint_multiples` and :func:`joint_scale`: a line along the combined Newton step, and the
   common factor that keeps coupled groups from overshooting together;
3. :func:`momentum_factor`: the correction for the momentum that keeps moving along the update;
4. :func:`settle`: clip the change of a rate and smooth it across refreshes (:func:`clip_rate`,
   :func:`smooth`), the only place either happens.

The options of all rules live in one :class:`RuleConfig`; the wrapper only measures (moves weights,
calls the probe) and records. When refreshes come and how a known step budget shapes the rates
over time: :mod:`hidlr.optim.schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from hidlr.optim.qp import nonneg_quadratic_min
from hidlr.optim.quadfit import QuadFit, fit_line
from hidlr.optim.records import GroupDecision

NOT_PROBED = "not probed at this refresh (groups_per_refresh)"
# the first refresh's cuts of every rate, tried in turn when the base step at the start rates does
# not lower the probe loss (an Armijo test; with first_clip; round 10 of docs/diagnosis.md)
BACKTRACK_CUTS = (0.1, 0.01, 0.001)
# the share of a known step budget during which rates may grow (RuleConfig.grow_window; round 3 of
# docs/diagnosis.md compared 0.1, 0.25 and 0.5)
GROW_WINDOW = 0.25


@dataclass(frozen=True)
class RuleConfig:
    """Options of the rate rules.

    Attributes:
        mode: ``"diag"`` (Newton rate ``b_k / A_kk`` per group) or ``"full"`` (minimiser of the fitted
            quadratic over non-negative rates).
        ema: smoothing of rates across refreshes, in [0, 1) (0: none).
        clip: bounds (lo, hi) on the change of a rate per refresh, as multiples; None: no bound.
        min_r2: smallest accepted coefficient of determination of a fit, in [0, 1].
        horizon: momentum correction exponent in [0, 1] (see :func:`momentum_factor`).
        joint: scale all rates down together when the combined step overshoots.
        max_multiple: the largest multiple of its current rate a group is probed at or proposed
            when its curvature is below the loss's resolution.
        resolution_factor: a fitted term below this many units of the loss's rounding is noise.
        probe_share: the share of the training compute the automatic schedule gives the probes.
        probe_credit: probe forward passes the automatic schedule may spend ahead of that share
            (fast early refreshes); the refreshes before the rates first arrive (at most
            ``TRAVEL_LIMIT``, and with ``total_steps`` while they have spent less than the whole
            run's share, :func:`hidlr.optim.schedule.arrival_is_free`) are not charged to it.
        shrink: hierarchical rates: each group's Newton multiple is shrunk towards the one-group
            (GeN) multiple of the combined step, ``m0 * (m_k / m0) ** shrink`` (0: every group takes
            the one-group multiple, 1: the per-group rule unchanged); None: no one-group line.
        max_groups: with more active groups than this, every refresh probes only the one-group line
            (8 forward passes; every group takes its multiple: the one-group rule, GeN), since
            under the probe budget each group's own fit would come too rarely; None: always per group.
        travel: while any group's target is cut by the clip and no refresh has yet had every target
            inside it, refresh again at the next step with the one-group line alone (4 forward
            passes; every group takes the line's multiple of its rate), at most ``TRAVEL_LIMIT``
            times; these forwards do not count against ``probe_credit``, so the refreshes after
            arrival come as soon as after a first refresh.
        first_clip: the clip of the first refresh, which is also not smoothed (the start rate is a
            guess, not an estimate worth averaging with) and backtracks first (the rates cut by the
            first of :data:`BACKTRACK_CUTS` whose step lowers the probe loss, when the base step at
            the start rates does not); None: the first refresh is like the others.
        total_steps: the run's step budget, when known; with it, rates may grow only during the
            first ``grow_window`` of it or until they have arrived (see :func:`may_grow`). None: they
            may grow throughout.
        grow_window: the fraction of ``total_steps`` during which a refresh may raise a rate.
        anneal: with ``total_steps``, the final fraction of it over which the applied rates fall
            linearly to 0 (:func:`anneal_factor`); None: no anneal.
    """

    mode: str = "diag"
    ema: float = 0.3
    clip: tuple[float, float] | None = (0.5, 2.0)
    min_r2: float = 0.9
    horizon: float = 0.5
    joint: bool = True
    max_multiple: float = 100.0
    resolution_factor: float = 16.0
    probe_share: float = 0.05
    probe_credit: float = 96.0
    shrink: float | None = None
    max_groups: int | None = None
    travel: bool = False
    first_clip: tuple[float, float] | None = None
    total_steps: int | None = None
    grow_window: float = GROW_WINDOW
    anneal: float | None = None


# ------------------------------------------------------------------------------- acceptance
def diag_rejection(a: float, b: float, r2: float, min_r2: float) -> str | None:
    """Why a one-group fit ``-b z + a z^2 / 2`` gives no Newton rate, or None when it does.

    ``r2`` may be NaN (no probes of the group's own): the fit-quality test is then skipped.
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        return "non-finite fit"
    if a <= 0:
        return "not convex along the update (a <= 0)"
    if b <= 0:
        return "not a descent direction (b <= 0)"
    if math.isfinite(r2) and r2 < min_r2:
        return f"poor quadratic fit (R^2 = {r2:.3f} < {min_r2})"
    return None


def unresolved(
    a: float, b: float, span: float, resolution: float, max_multiple: float
) -> tuple[float, str | None] | None:
    """The rule for fits below the loss's rounding (``resolution``, in loss units), probed up to
    multiple ``span``: None when the curvature term is resolved (the Newton rule applies); else
    ``(max_multiple, None)`` when the slope is resolved (the minimum lies far beyond the probes:
    grow the rate, the clip bounds by how much), or ``(nan, reason)`` when neither is."""
    if 0.5 * abs(a) * span**2 > resolution:
        return None
    if b * span > resolution:
        return max_multiple, None
    return float("nan"), "loss does not change measurably along the update"


def newton_multiples(
    fit: QuadFit, active: Sequence[bool], mode: str, min_r2: float
) -> tuple[list[float], list[str | None]]:
    """Newton multiples of the current rates and the rejection reason per group (None: accepted).

    diag: ``b_k / A_kk`` per group. full: the minimiser of ``-b^T z + z^T A z / 2`` over ``z >= 0``
    on the active groups; a group at the bound 0 keeps its rate ("full-mode rate not positive").
    Full mode falls back to the diagonal rule when the active block of A is not positive definite
    or the joint fit is poor.
    """
    k = len(active)
    multiple = [float("nan")] * k
    reason: list[str | None] = ["frozen or skipped"] * k
    idx = [g for g in range(k) if active[g]]
    if mode == "full" and len(idx) > 1:
        block = fit.A[idx][:, idx]
        finite = bool(torch.isfinite(block).all()) and bool(torch.isfinite(fit.b[idx]).all())
        info = int(torch.linalg.cholesky_ex(block)[1]) if finite else 1
        if info == 0 and fit.r2_all >= min_r2:
            z = nonneg_quadratic_min(block, fit.b[idx])
            for j, g in enumerate(idx):
                if float(z[j]) > 0:
                    multiple[g], reason[g] = float(z[j]), None
                else:
                    reason[g] = "full-mode rate not positive"
            return multiple, reason
        fallback = "A not positive definite" if info != 0 else f"poor joint fit (R^2 = {fit.r2_all:.3f})"
        multiple, reason = newton_multiples(fit, active, "diag", min_r2)
        return multiple, [r if r is None or not active[g] else f"{fallback}; {r}" for g, r in enumerate(reason)]
    for g in idx:
        reason[g] = diag_rejection(float(fit.A[g, g]), float(fit.b[g]), float(fit.r2[g]), min_r2)
        if reason[g] is None:
            multiple[g] = float(fit.b[g] / fit.A[g, g])
    return multiple, reason


def newton_decisions(
    fit: QuadFit,
    active: Sequence[bool],
    fit_active: Sequence[bool],
    rates: Sequence[float],
    estimates: Sequence[float],
    names: Sequence[str],
    config: RuleConfig,
    span: float,
    resolution: float,
    probed: Sequence[bool] | None = None,
) -> list[GroupDecision]:
    """Stage 1: one decision per group from the fit (in rate multiples of ``rates``, the rates the
    probes were taken at). ``active``: the group moved; ``probed``: it was probed at this refresh
    (default: every active group); ``fit_active``: its probes were finite. ``span``: the largest
    probe multiple; ``resolution``: the loss's rounding."""
    probed = active if probed is None else probed
    multiple, reason = newton_multiples(fit, fit_active, config.mode, config.min_r2)
    out = []
    for k in range(len(rates)):
        a, b, h = float(fit.A[k, k]), float(fit.b[k]), rates[k]
        if fit_active[k]:
            rule = unresolved(a, b, span, resolution, config.max_multiple)
            if rule is not None:
                multiple[k], reason[k] = rule
        why = reason[k]
        if not active[k]:
            why = "frozen" if h == 0 else "no gradients"
        elif not probed[k]:
            why = NOT_PROBED
        elif not fit_active[k]:
            why = "non-finite probe loss"
        measured = probed[k] and h > 0
        r2 = float(fit.r2[k])
        out.append(
            GroupDecision(
                name=names[k],
                rate=h,
                estimate=estimates[k],
                newton_rate=multiple[k] * h if why is None else None,
                a=a / h**2 if measured else None,
                b=b / h if measured else None,
                r2=None if math.isnan(r2) else r2,
                accepted=why is None,
                reason=why,
            )
        )
    return out


# ----------------------------------------------------------------------------- joint line
def joint_multiples(decisions: Sequence[GroupDecision], active: Sequence[bool], max_multiple: float) -> list[float]:
    """Stage 2a: the combined Newton step, as multiples of the current rates: accepted groups at
    their Newton rates (at most ``max_multiple``: far beyond it, moving float32 weights out and back
    loses their low bits), the other active groups at their current rates, inactive ones at 0."""
    return [
        (min(d.newton_rate / d.rate, max_multiple) if d.accepted else 1.0) if active[k] else 0.0
        for k, d in enumerate(decisions)
    ]


def joint_scale(s: Sequence[float], y: Sequence[float]) -> float | None:
    """Stage 2b: the factor for the Newton rates from loss changes ``y`` at multiples ``s`` of the
    combined step: the 1-D Newton step ``beta / alpha`` when below 1, else 1; None when the line is
    not a descent direction or a loss is not finite."""
    st = torch.as_tensor(s, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    if not bool(torch.isfinite(yt).all()):
        return None
    beta, alpha, _ = fit_line(st, yt)
    if not beta > 0:
        return None
    return 1.0 if alpha <= 0 else min(1.0, beta / alpha)


def apply_joint_scale(decisions: Sequence[GroupDecision], scale: float | None) -> list[GroupDecision]:
    """Multiply accepted Newton rates by ``scale``; with None, reject them."""
    out = []
    for d in decisions:
        if not d.accepted:
            out.append(d)
        elif scale is None:
            out.append(
                replace(d, accepted=False, reason="combined step not a descent direction", newton_rate=d.newton_rate)
            )
        else:
            out.append(replace(d, newton_rate=d.newton_rate * scale))
    return out


# ------------------------------------------------------------------------ hierarchical rates
ONE_GROUP_LINE = (-1.0, 1.0, 2.0)


def one_group_line(s: Sequence[float], y: Sequence[float]) -> tuple[float, float, float] | None:
    """Slope, curvature and R^2 ``(beta, alpha, r2)`` of ``y ~ -beta s + alpha s^2 / 2``, the loss
    changes ``y`` at multiples ``s`` of the current combined step; None when a loss is not finite."""
    yt = torch.as_tensor(y, dtype=torch.float64)
    if not bool(torch.isfinite(yt).all()):
        return None
    return fit_line(torch.as_tensor(s, dtype=torch.float64), yt)


def one_group_multiple(s: Sequence[float], y: Sequence[float]) -> float | None:
    """The one-group (GeN) Newton multiple from loss changes ``y`` at multiples ``s`` of the current
    combined step; None when the line is not a convex descent or a loss is not finite."""
    line = one_group_line(s, y)
    if line is None:
        return None
    beta, alpha, _ = line
    return beta / alpha if beta > 0 and alpha > 0 else None


NO_LINE = "one-group line not convex"


def grow_concave_descent(
    multiple: tuple[float | None, str | None], max_multiple: float
) -> tuple[float | None, str | None]:
    """The line rule of a phase begun by ``HiDLR.restart_schedule``, until a refresh of it has every
    target inside the clip: a line that descends but is concave (:data:`NO_LINE`) reads as a
    minimum beyond the probes, as a flat curvature does in :func:`unresolved`, and takes
    ``max_multiple`` (the clip bounds the growth) instead of keeping the rates. ``multiple``:
    :func:`line_multiple`'s result; others unchanged. A growth the probe loss rises after is undone
    (:func:`rose_after_growth`, :func:`undo_growth`). A run that starts at a zero weight matrix
    (LoRA's B) begins in such a phase; any other run keeps the rates on a concave line at its start:
    growing there broke full-model fine-tuning on two seeds of three (rounds 5 and 23 to 25 of
    ``docs/diagnosis.md``)."""
    return (max_multiple, None) if multiple[1] == NO_LINE else multiple


GROWTH_UNDONE = "probe loss rose after the rates grew on a concave line"
# how far the probe loss may rise above its lowest since a growth of grow_concave_descent before the
# growth is undone (round 24 of docs/diagnosis.md): a fine-tuning run's collapse rose 7% in two steps
GROWTH_RISE = 0.05


def rose_after_growth(loss: float, lowest: float, rise: float = GROWTH_RISE) -> bool:
    """Whether the probe loss ``loss`` at a refresh is more than ``rise`` (relative) above ``lowest``,
    the lowest probe loss since a phase's first concave-line growth: the growth overshot."""
    return loss - lowest > rise * abs(lowest)


def undo_growth(
    decisions: Sequence[GroupDecision], before: Sequence[float], active: Sequence[bool]
) -> list[GroupDecision]:
    """Each active group whose new estimate is above ``before`` (its rate before the phase's first
    concave-line growth) goes back to it (:data:`GROWTH_UNDONE`); the others are unchanged."""
    return [
        replace(d, estimate=before[k], accepted=False, reason=GROWTH_UNDONE, target=None)
        if active[k] and d.estimate > before[k]
        else d
        for k, d in enumerate(decisions)
    ]


# the most line-only refreshes a run travels with (RuleConfig.travel): 2**16 of range at clip 2
TRAVEL_LIMIT = 16


LINE_ASCENT = "combined step not a descent direction"


def line_multiple(
    line: tuple[float, float, float] | None, span: float, resolution: float, max_multiple: float, min_r2: float = 0.0
) -> tuple[float | None, str | None]:
    """The one-group line's Newton multiple and None, or None and why there is none. ``line``: its
    slope, curvature and R^2 (:func:`one_group_line`; None when a loss was not finite); below the
    loss's rounding the rule of :func:`unresolved` applies, as for a group's own fit, and above it
    the acceptance of :func:`diag_rejection` (``min_r2``)."""
    if line is None:
        return None, "non-finite loss along the combined step"
    beta, alpha, r2 = line
    rule = unresolved(alpha, beta, span, resolution, max_multiple)
    if rule is not None:
        return (rule[0], None) if rule[1] is None else (None, rule[1])
    if beta <= 0:
        return None, LINE_ASCENT
    if alpha <= 0:
        return None, NO_LINE
    if math.isfinite(r2) and r2 < min_r2:
        return None, f"poor quadratic fit of the line (R^2 = {r2:.3f} < {min_r2})"
    return beta / alpha, None


def line_decisions(
    active: Sequence[bool],
    rates: Sequence[float],
    estimates: Sequence[float],
    names: Sequence[str],
    multiple: tuple[float | None, str | None],
) -> list[GroupDecision]:
    """Decisions of a refresh that probed only the one-group line: every active group takes the
    line's multiple of its rate, or is rejected with the reason (``multiple``: :func:`line_multiple`)."""
    m0, line_why = multiple
    out = []
    for k, h in enumerate(rates):
        why = line_why if active[k] else ("frozen" if h == 0 else "no gradients")
        out.append(
            GroupDecision(
                name=names[k],
                rate=h,
                estimate=estimates[k],
                newton_rate=None if why else h * m0,
                a=None,
                b=None,
                r2=None,
                accepted=why is None,
                reason=why,
            )
        )
    return out


def shrink_to_one_group(
    decisions: Sequence[GroupDecision], active: Sequence[bool], m0: float | None, shrink: float
) -> list[GroupDecision]:
    """Each accepted group's Newton multiple shrunk towards the one-group multiple ``m0``:
    ``m0 * (m_k / m0) ** shrink``. Rejected groups keep their decision (a group whose own line
    rises or does not resolve is not moved by the others' curvature). Unchanged when ``m0`` is None."""
    if m0 is None:
        return list(decisions)
    out = []
    for d, act in zip(decisions, active):
        if act and d.accepted and d.rate > 0:
            m = d.newton_rate / d.rate
            out.append(replace(d, newton_rate=d.rate * m0 * (m / m0) ** shrink))
        else:
            out.append(d)
    return out


# ------------------------------------------------------------------------- momentum, settle
def momentum_factor(beta: float, horizon: float) -> float:
    """Momentum keeps moving along the update for about ``1 / (1 - beta)`` steps, so the one-step
    Newton rate overshoots: ``(1 - beta) ** horizon`` (0: no correction, 1: the whole carry)."""
    return (1.0 - beta) ** horizon


def clip_rate(previous: float, proposed: float, clip: tuple[float, float] | None) -> float:
    """``proposed`` within ``[clip[0] * previous, clip[1] * previous]`` (unchanged for None)."""
    if clip is None:
        return proposed
    return min(max(proposed, clip[0] * previous), clip[1] * previous)


def smooth(previous: float, target: float, ema: float) -> float:
    """``ema * previous + (1 - ema) * target``."""
    return ema * previous + (1.0 - ema) * target


def first_refresh_config(config: RuleConfig) -> RuleConfig:
    """The rules of the first refresh: ``first_clip`` and no smoothing (unchanged without ``first_clip``)."""
    if config.first_clip is None:
        return config
    return replace(config, clip=config.first_clip, ema=0.0)


def clipped(decisions: Sequence[GroupDecision], betas: Sequence[float], config: RuleConfig) -> bool:
    """Whether any accepted group's corrected Newton rate lies outside the clip of its estimate
    (before :func:`settle`): its rate is still travelling."""
    if config.clip is None:
        return False
    for d, beta in zip(decisions, betas):
        if d.accepted:
            raw = d.newton_rate * momentum_factor(beta, config.horizon)
            if raw != clip_rate(d.estimate, raw, config.clip):
                return True
    return False


def settle(decisions: Sequence[GroupDecision], betas: Sequence[float], config: RuleConfig) -> list[GroupDecision]:
    """Stage 3-4: each accepted group's target (Newton rate times the momentum correction, within
    the clip of its estimate) and new estimate (smoothed towards the target); others unchanged."""
    out = []
    for d, beta in zip(decisions, betas):
        if not d.accepted:
            out.append(d)
            continue
        target = clip_rate(d.estimate, d.newton_rate * momentum_factor(beta, config.horizon), config.clip)
        out.append(replace(d, target=target, estimate=smooth(d.estimate, target, config.ema)))
    return out
