"""Per-group influence from Hi-DLR's quadratic fits.

Each refresh fits, for group ``k`` along its update direction ``d_k`` at rate ``eta``,
``L(w - eta d_k) ~ L(w) - b_k eta + a_k eta^2 / 2`` (the ``a`` and ``b`` of a refresh record's
group entry). The best decrease the group can reach alone is then ``b_k^2 / (2 a_k)`` (loss units),
and the per-parameter influence score is ``PPI_k = b_k^2 / (a_k n_k)``, ``n_k`` the group's size.

This module reads only the public refresh history (a list of records, each with a ``"groups"``
list of per-group entries holding ``a``, ``b``, ``rate`` and ``reason``), so it depends on nothing
else of the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# reasons for which a refresh measured nothing about a group (it did not move)
_UNMEASURED = ("frozen", "no gradients", "non-finite probe loss")
_FLAT = "loss does not change measurably along the update"
# a refresh skipped the group for the probe budget (HiDLR's ``groups_per_refresh``): it could move,
# but nothing was measured, so its influence is unknown rather than 0
_SKIPPED = "not probed at this refresh (groups_per_refresh)"
# a convex fit is trusted up to this multiple of the probed rate: a nearly flat fit (a ~ 0) would
# otherwise predict an absurd decrease at an absurd step (HiDLR bounds its joint step the same way)
MAX_STEP_MULTIPLE = 100.0


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` for record objects (missing: None)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def predicted_decrease(a: float, b: float, span: float | None = None) -> float:
    """The largest decrease of ``L(eta) = L0 - b eta + a eta^2 / 2`` over ``0 <= eta <= span``.

    Without ``span``: ``b^2 / (2a)`` when ``a > 0 and b > 0``, 0 when ``b <= 0 < a`` (no descent
    along the update), infinite for a concave fit that descends (``a <= 0``, no minimum).
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"a and b must be finite, got a={a}, b={b}")
    if span is not None and not span > 0:
        raise ValueError(f"span must be positive, got {span}")
    if a > 0:
        eta = max(0.0, b / a) if span is None else min(max(0.0, b / a), span)
    elif span is None:
        return math.inf if (b > 0 or a < 0) else 0.0
    else:
        eta = span
    return max(0.0, b * eta - 0.5 * a * eta * eta)


def refresh_decreases(record: Any, probe_span: float = 2.0) -> list[float | None]:
    """Per group of one refresh record: the predicted decrease, or None where it measured nothing.

    A convex fit gives ``b^2 / (2a)`` (its minimum taken no farther than ``MAX_STEP_MULTIPLE``
    times the rate); a concave one, or one whose quadratic fit was rejected as poor (noise
    dominates, so ``b / a`` is unreliable), gives the best decrease within the probed range,
    ``probe_span`` times the rate; a group whose loss did not change measurably gives 0.
    """
    out: list[float | None] = []
    for g in _field(record, "groups"):
        reason, a, b, rate = _field(g, "reason"), _field(g, "a"), _field(g, "b"), _field(g, "rate")
        if reason in _UNMEASURED or a is None or b is None or not rate:
            out.append(None)
        elif reason == _FLAT:
            out.append(0.0)
        elif not (math.isfinite(a) and math.isfinite(b)):
            out.append(None)
        else:
            bounded = float(a) <= 0 or (isinstance(reason, str) and "poor" in reason)
            span = (probe_span if bounded else MAX_STEP_MULTIPLE) * float(rate)
            out.append(predicted_decrease(float(a), float(b), span=span))
    return out


def influence_from_history(history: Sequence[Any], n_groups: int, probe_span: float = 2.0) -> list[float]:
    """Influence per group (loss units): the mean over the refreshes that measured the group of
    its predicted decrease (:func:`refresh_decreases`); 0 for a group never measured."""
    sums, counts = [0.0] * n_groups, [0] * n_groups
    for record in history:
        dec = refresh_decreases(record, probe_span)
        if len(dec) != n_groups:
            raise ValueError(f"a refresh record has {len(dec)} groups, the optimizer has {n_groups}")
        for k, v in enumerate(dec):
            if v is not None:
                sums[k] += v
                counts[k] += 1
    return [s / c if c else 0.0 for s, c in zip(sums, counts)]


def group_sizes(param_groups: Sequence[Mapping[str, Any]]) -> list[int]:
    """Number of scalar parameters in each param group."""
    return [sum(p.numel() for p in g["params"]) for g in param_groups]


def group_names(param_groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each group's ``"name"`` (its index as a string where it has none)."""
    return [str(g.get("name", k)) for k, g in enumerate(param_groups)]


@dataclass(frozen=True)
class InfluenceRow:
    """One group of an influence table."""

    rank: int
    name: str
    params: int
    influence: float  # predicted decrease b^2 / (2a), loss units
    per_param: float  # PPI = b^2 / (a n) = 2 * influence / n
    share: float  # influence / total influence
    trainable: bool


def never_probed(history: Sequence[Any], n_groups: int) -> list[int]:
    """Groups that some refresh skipped for the probe budget and no refresh measured: they could
    move, but their influence is unknown (not 0)."""
    skipped, measured = [False] * n_groups, [False] * n_groups
    for record in history:
        entries = list(_field(record, "groups"))
        if len(entries) != n_groups:
            raise ValueError(f"a refresh record has {len(entries)} groups, the optimizer has {n_groups}")
        for k, (g, dec) in enumerate(zip(entries, refresh_decreases(record))):
            skipped[k] |= _field(g, "reason") == _SKIPPED
            measured[k] |= dec is not None
    return [k for k in range(n_groups) if skipped[k] and not measured[k]]


def require_refreshed(opt: Any) -> None:
    """Refuse an optimizer without influence (not a HiDLR) or with no refresh to read it from."""
    if not hasattr(opt, "influence"):
        raise TypeError(f"opt must be a HiDLR with refresh history, got {type(opt).__name__}")
    if not opt.history:
        raise ValueError("the optimizer has not refreshed yet: run a few steps before ranking or planning")


def require_group_fits(opt: Any) -> None:
    """Refuse an optimizer whose influence would not be a measurement: its refreshes fitted no group
    alone (the one-group rule of ``HiDLR(max_groups=...)``), or some trainable group was never
    probed (``groups_per_refresh`` smaller than the number of groups, too few refreshes)."""
    history = getattr(opt, "history", None) or []
    if history and not any(_field(g, "a") is not None for rec in history for g in _field(rec, "groups")):
        raise ValueError(
            "the optimizer's refreshes fitted no group alone (with more groups than max_groups it "
            "refreshes by the one-group rule): construct the influence run's HiDLR with max_groups=None"
        )
    names = group_names(opt.param_groups)
    missing = [
        names[k]
        for k in never_probed(history, len(names))
        if any(p.requires_grad for p in opt.param_groups[k]["params"])
    ]
    if missing:
        head = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        per = getattr(opt, "groups_per_refresh", None)
        raise ValueError(
            f"{len(missing)} of {len(names)} groups were never probed ({head}), so their influence is "
            f"unknown: the refreshes probe at most groups_per_refresh={per} groups each. Construct the "
            "influence run's HiDLR with groups_per_refresh=None (every group at every refresh), or run "
            "more refreshes"
        )


def influence_table(opt: Any) -> list[InfluenceRow]:
    """The optimizer's groups ranked by influence (highest first; ties by name)."""
    require_refreshed(opt)
    require_group_fits(opt)
    infl = list(opt.influence)
    names, sizes = group_names(opt.param_groups), group_sizes(opt.param_groups)
    trainable = [any(p.requires_grad for p in g["params"]) for g in opt.param_groups]
    total = sum(v for v in infl if math.isfinite(v))
    order = sorted(range(len(infl)), key=lambda k: (-infl[k], names[k]))
    return [
        InfluenceRow(
            rank=r + 1,
            name=names[k],
            params=sizes[k],
            influence=infl[k],
            per_param=2.0 * infl[k] / sizes[k] if sizes[k] else 0.0,
            share=infl[k] / total if total > 0 else 0.0,
            trainable=trainable[k],
        )
        for r, k in enumerate(order)
    ]


def format_table(rows: Sequence[InfluenceRow]) -> str:
    """A Markdown table of an influence ranking."""
    lines = [
        "| rank | group | params | influence (loss) | per param | share | trainable |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.rank} | {r.name} | {r.params:,} | {r.influence:.3e} | {r.per_param:.3e} | "
            f"{100 * r.share:.1f}% | {'yes' if r.trainable else 'no'} |"
        )
    return "\n".join(lines)
