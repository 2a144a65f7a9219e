"""Freezing plans: which groups stay trainable under a parameter budget, chosen by influence.

A plan keeps the set of groups with the largest total influence whose sizes fit the budget (an
exact 0/1 knapsack: value = influence, weight = group size) and freezes the rest. Applying a plan
freezes for real: ``requires_grad=False`` (autograd computes no gradient for those tensors and the
backward pass stops where nothing upstream trains), the gradient and the base optimizer's state
are dropped, and a HiDLR wrapper then spends no probes on those groups. A plan names parameters, so
it transfers to another model of the same family (:func:`apply_plan`).

Where the kept groups lie sets a step's cost: a kept group near the input (an embedding, the first
LayerNorm) makes every step run the backward pass through the whole network, whatever the number of
parameters trained. ``max_reach`` keeps a plan to the last share of the groups, in the order the
forward pass runs them; :attr:`FreezePlan.reach` says how far back a plan's backward pass runs.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from hidlr.influence.scores import group_names, group_sizes, require_group_fits, require_refreshed


def knapsack(values: Sequence[float], weights: Sequence[int], capacity: int) -> list[int]:
    """Indices of the items of largest total value with total weight ``<= capacity`` (exact).

    Dynamic programming over the Pareto frontier of (weight, value) pairs: exact for any integer
    weights, and small when many items share a size (layers of one architecture). Items with a
    value ``<= 0`` are never taken. Returns sorted indices.
    """
    if len(values) != len(weights):
        raise ValueError(f"values and weights differ in length: {len(values)} and {len(weights)}")
    if any((not isinstance(w, int)) or w < 0 for w in weights):
        raise ValueError("weights must be non-negative ints")
    if any(not math.isfinite(v) for v in values):
        raise ValueError("values must be finite")
    frontier: list[tuple[int, float, int]] = [(0, 0.0, 0)]  # (weight, value, item mask), value increasing
    for i, (v, w) in enumerate(zip(values, weights)):
        if v <= 0 or w > capacity:
            continue
        grown = [(fw + w, fv + v, m | (1 << i)) for fw, fv, m in frontier if fw + w <= capacity]
        merged = sorted(frontier + grown, key=lambda t: (t[0], -t[1]))
        frontier = []
        for entry in merged:
            if not frontier or entry[1] > frontier[-1][1]:
                frontier.append(entry)
    mask = frontier[-1][2]
    return [i for i in range(len(values)) if mask >> i & 1]


@dataclass(frozen=True)
class FreezePlan:
    """Which groups (and, when known, which named parameters) stay trainable.

    ``budget`` is the fraction of the planned parameters allowed to train (or None), ``max_groups``
    the number of groups (or None); ``trainable_params <= budget * total_params`` holds exactly.
    ``max_reach``: the share of the groups, counted back from the last, among which kept groups lie
    (None: any group); :attr:`reach`: how far back the kept groups actually go.
    A plan over no parameters (``total_params < 1``) is refused at construction.
    """

    kept_groups: tuple[str, ...]
    frozen_groups: tuple[str, ...]
    trainable_params: int
    total_params: int
    influence: dict[str, float]
    sizes: dict[str, int]
    budget: float | None = None
    max_groups: int | None = None
    max_reach: float | None = None
    trainable: tuple[str, ...] = ()  # parameter names kept trainable (empty when unknown)
    frozen: tuple[str, ...] = ()  # parameter names frozen
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.total_params, bool) or not isinstance(self.total_params, int) or self.total_params < 1:
            raise ValueError(f"total_params must be a positive int (no plan over nothing), got {self.total_params!r}")
        if not 0 <= self.trainable_params <= self.total_params:
            raise ValueError(
                f"trainable_params must be in [0, total_params={self.total_params}], got {self.trainable_params!r}"
            )

    @property
    def fraction(self) -> float:
        """Trainable parameters over planned parameters."""
        return self.trainable_params / self.total_params

    @property
    def reach(self) -> float:
        """Share of the groups (in forward order) from the first kept group to the last: how far
        back the backward pass must run. 0 when nothing is kept; with ``max_reach``, at most
        ``ceil(max_reach * groups) / groups``."""
        order = list(self.influence)  # the groups in the order they were planned
        if not self.kept_groups or not order:
            return 0.0
        return (len(order) - order.index(self.kept_groups[0])) / len(order)

    @property
    def has_names(self) -> bool:
        return bool(self.trainable or self.frozen)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> FreezePlan:
        d = json.loads(text)
        for key in ("kept_groups", "frozen_groups", "trainable", "frozen"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> FreezePlan:
        return cls.from_json(Path(path).read_text())


def _group_names_arg(name: str, value: Any) -> tuple[str, ...]:
    """Group names given as None (none), one name, or an iterable of names; matched exactly later."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a group name or a sequence of group names, got {type(value).__name__}")
    out = tuple(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must hold group names (str), got {bad[0]!r} of type {type(bad[0]).__name__}")
    return out


def plan_from_scores(
    names: Sequence[str],
    influence: Sequence[float],
    sizes: Sequence[int],
    *,
    budget: float | None = None,
    max_groups: int | None = None,
    keep: str | Sequence[str] | None = (),
    max_reach: float | None = None,
) -> FreezePlan:
    """A plan from plain numbers: keep the groups of largest total influence within the budget.

    Args:
        names, influence, sizes: per group (equal lengths, unique names), in the order the forward
            pass runs the groups (the order matters only with ``max_reach``).
        budget: fraction in (0, 1] of ``sum(sizes)`` allowed to stay trainable, or
        max_groups: number of groups allowed to stay trainable (exactly one of the two).
        keep: groups that stay trainable whatever their influence (their size counts): one name,
            a sequence of names (exact matches), or None.
        max_reach: fraction in (0, 1] of the groups, the last ``ceil(max_reach * len(names))`` of
            them, that may stay trainable; the groups before them are frozen, so that the backward pass stops
            there. None: any group may.
    """
    keep = _group_names_arg("keep", keep)
    if not (len(names) == len(influence) == len(sizes)):
        raise ValueError(f"names, influence and sizes differ in length: {len(names)}, {len(influence)}, {len(sizes)}")
    if len(set(names)) != len(names):
        raise ValueError("group names must be unique")
    if not names:
        raise ValueError("no groups to plan")
    if (budget is None) == (max_groups is None):
        raise ValueError("give exactly one of budget (a fraction of the parameters) and max_groups")
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"keep names unknown groups: {', '.join(unknown)}; groups: {', '.join(names)}")
    total = int(sum(sizes))
    if total == 0:
        raise ValueError("the groups hold no parameters")
    infl = [float(v) for v in influence]
    if not all(math.isfinite(v) for v in infl):
        raise ValueError(f"influence values must be finite, got {infl}")
    forced = [i for i, n in enumerate(names) if n in keep]
    first = _first_reachable(len(names), max_reach)
    early = [names[i] for i in forced if i < first]
    if early:
        raise ValueError(
            f"keep names groups before the last {len(names) - first} of {len(names)} groups that max_reach={max_reach} "
            f"allows: {', '.join(early)}"
        )
    free = [i for i in range(first, len(names)) if names[i] not in keep]
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not 0 < budget <= 1:
            raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
        capacity = math.floor(budget * total + 1e-9)
        if capacity < 1:
            raise ValueError(f"budget {budget} of {total:,} parameters is empty (under one parameter)")
        capacity -= sum(sizes[i] for i in forced)
        if capacity < 0:
            raise ValueError(f"the groups in keep alone exceed the budget {budget} ({total:,} parameters)")
        smallest = min((sizes[i] for i in free), default=0)
        if not forced and smallest > capacity:
            raise ValueError(
                f"budget {budget} allows {capacity:,} parameters, less than the smallest group"
                f"{' that max_reach allows' if max_reach is not None else ''} ({smallest:,}): "
                "the plan would train nothing"
            )
        chosen = [free[j] for j in knapsack([infl[i] for i in free], [int(sizes[i]) for i in free], capacity)]
    else:
        if isinstance(max_groups, bool) or not isinstance(max_groups, numbers.Integral) or max_groups < 1:
            raise ValueError(f"max_groups must be a positive int, got {max_groups!r}")
        max_groups = int(max_groups)
        if len(forced) > max_groups:
            raise ValueError(f"keep names {len(forced)} groups, more than max_groups={max_groups}")
        ranked = sorted(free, key=lambda i: (-infl[i], names[i]))
        chosen = [i for i in ranked[: max_groups - len(forced)] if infl[i] > 0]
    kept = set(chosen) | set(forced)
    return FreezePlan(
        kept_groups=tuple(names[i] for i in range(len(names)) if i in kept),
        frozen_groups=tuple(names[i] for i in range(len(names)) if i not in kept),
        trainable_params=int(sum(sizes[i] for i in kept)),
        total_params=total,
        influence=dict(zip(names, infl)),
        sizes={n: int(s) for n, s in zip(names, sizes)},
        budget=None if budget is None else float(budget),
        max_groups=max_groups,
        max_reach=None if max_reach is None else float(max_reach),
    )


def _first_reachable(n_groups: int, max_reach: float | None) -> int:
    """Index of the first group that ``max_reach`` lets a plan keep (0 without it)."""
    if max_reach is None:
        return 0
    if isinstance(max_reach, bool) or not isinstance(max_reach, numbers.Real) or not 0 < max_reach <= 1:
        raise ValueError(f"max_reach must be a fraction in (0, 1] of the groups, or None, got {max_reach!r}")
    return n_groups - max(1, math.ceil(max_reach * n_groups - 1e-9))


def _param_names(model: nn.Module | None, param_groups: Sequence[dict]) -> list[list[str]] | None:
    if model is None:
        return None
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
    by_id = {id(p): n for n, p in model.named_parameters()}
    out = []
    for g in param_groups:
        missing = [tuple(p.shape) for p in g["params"] if id(p) not in by_id]
        if missing:
            raise ValueError(
                f"group {g.get('name', '?')!r} holds tensors of shapes {missing} that are not parameters of the model"
            )
        out.append([by_id[id(p)] for p in g["params"]])
    return out


def plan_for(
    opt: Any,
    *,
    budget: float | None = None,
    max_groups: int | None = None,
    model: nn.Module | None = None,
    keep: str | Sequence[str] | None = (),
    max_reach: float | None = None,
) -> FreezePlan:
    """A plan from a running HiDLR's influence (see :func:`plan_from_scores`), over the groups that
    are trainable now, in the optimizer's order (``max_reach`` takes it as the forward pass's, as
    :mod:`hidlr.groups` builds groups from a model that registers its modules in the order it runs
    them; :func:`hidlr.groups.in_forward_order` sorts them by a forward pass otherwise); with
    ``model``, the plan also names the parameters (needed to transfer it)."""
    require_refreshed(opt)
    require_group_fits(opt)
    groups = list(opt.param_groups)
    pnames = _param_names(model, groups)
    infl = list(opt.influence)
    live = [k for k, g in enumerate(groups) if any(p.requires_grad for p in g["params"])]
    names, sizes = group_names(groups), group_sizes(groups)
    plan = plan_from_scores(
        [names[k] for k in live],
        [infl[k] for k in live],
        [sizes[k] for k in live],
        budget=budget,
        max_groups=max_groups,
        keep=keep,
        max_reach=max_reach,
    )
    if pnames is None:
        return plan
    kept = set(plan.kept_groups)
    trainable = tuple(n for k in live if names[k] in kept for n in pnames[k])
    frozen = tuple(n for k in live if names[k] not in kept for n in pnames[k])
    return FreezePlan(**{**asdict(plan), "trainable": trainable, "frozen": frozen})


def freeze_groups(opt: Any, group_names_to_freeze: str | Sequence[str]) -> int:
    """Freeze the named param groups of ``opt`` for real; returns the number of parameters frozen.

    Each parameter gets ``requires_grad=False``, its gradient and its base-optimizer state are
    dropped; the group then has no gradients, so HiDLR neither steps nor probes it. A HiDLR's
    refresh schedule starts over (:meth:`~hidlr.HiDLR.restart_schedule`): the next step re-fits the
    groups left, the probes spent on the frozen ones do not delay the refreshes to come, and until
    the rates left (chosen beside the frozen groups) arrive again, a concave descent along their
    update grows them.
    """
    group_names_to_freeze = _group_names_arg("group_names_to_freeze", group_names_to_freeze)
    names = group_names(opt.param_groups)
    unknown = [n for n in group_names_to_freeze if n not in names]
    if unknown:
        raise ValueError(f"no param group named {', '.join(map(repr, unknown))}; groups: {', '.join(names)}")
    count = 0
    for g, name in zip(opt.param_groups, names):
        if name in group_names_to_freeze:
            for p in g["params"]:
                count += p.numel() if p.requires_grad else 0
                p.requires_grad_(False)
                p.grad = None
                opt.state.pop(p, None)
    restart = getattr(opt, "restart_schedule", None)
    if count and callable(restart):
        restart()
    return count


def freeze(
    opt: Any,
    budget: float = 0.1,
    *,
    max_groups: int | None = None,
    model: nn.Module | None = None,
    keep: str | Sequence[str] | None = (),
    max_reach: float | None = None,
) -> FreezePlan:
    """Freeze the lowest-influence groups of a running HiDLR until the trainable parameters are at
    most ``budget`` (a fraction of those trainable now; or give ``max_groups``), and return the plan.
    ``max_reach``: keep only groups among that share of the groups, counted back from the last (see
    :func:`plan_from_scores`), so that the backward pass stops early."""
    plan = plan_for(
        opt,
        budget=None if max_groups is not None else budget,
        max_groups=max_groups,
        model=model,
        keep=keep,
        max_reach=max_reach,
    )
    freeze_groups(opt, plan.frozen_groups)
    return plan


def apply_plan(model: nn.Module, plan: FreezePlan, *, strict: bool = True) -> int:
    """Freeze ``model``'s parameters that ``plan`` freezes, by name (transfer to a model of the same
    family); returns the number of parameters frozen.

    Every name in the plan must be a parameter of ``model``; with ``strict``, every trainable
    parameter of ``model`` must be named by the plan (kept or frozen).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(plan, FreezePlan):
        raise TypeError(f"plan must be a FreezePlan (e.g. FreezePlan.load(path)), got {type(plan).__name__}")
    if not plan.has_names:
        raise ValueError("the plan names no parameters (it was made without model=): it cannot be transferred")
    params = dict(model.named_parameters())
    unknown = [n for n in (*plan.trainable, *plan.frozen) if n not in params]
    if unknown:
        head = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"the plan names {len(unknown)} parameters the model lacks: {head}")
    if strict:
        named = set(plan.trainable) | set(plan.frozen)
        extra = [n for n, p in params.items() if p.requires_grad and n not in named]
        if extra:
            head = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise ValueError(
                f"the model has {len(extra)} trainable parameters the plan does not name: {head} "
                "(strict=False leaves them trainable)"
            )
    count = 0
    for n in plan.frozen:
        p = params[n]
        count += p.numel() if p.requires_grad else 0
        p.requires_grad_(False)
        p.grad = None
    return count
