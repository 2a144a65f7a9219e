"""Typed records of a refresh: one :class:`GroupDecision` per group inside one :class:`RefreshRecord`.

``HiDLR.history`` keeps them as plain dicts (:meth:`RefreshRecord.as_dict`), so that they print,
compare and save like any other checkpoint content.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GroupDecision:
    """What one refresh decided for one param group.

    Attributes:
        name: the group's ``"name"`` entry, else its index.
        rate: the rate the group's probes were taken at (the applied rate of this step).
        estimate: the group's new rate estimate (the previous one when not accepted).
        newton_rate: the rate the fitted quadratic proposes (after the joint scaling), None when
            not accepted.
        a, b: the fitted curvature ``d^T H d`` and slope ``g^T d`` along the group's direction
            (per unit rate), None for groups that did not move.
        r2: the coefficient of determination of the group's own probes, None without them.
        accepted: whether the group's rate followed the fit; ``reason`` says why not.
        target: the rate the estimate is smoothed towards (accepted groups), else None.
    """

    name: str
    rate: float
    estimate: float
    newton_rate: float | None
    a: float | None
    b: float | None
    r2: float | None
    accepted: bool
    reason: str | None
    target: float | None = None


@dataclass(frozen=True)
class RefreshRecord:
    """One refresh: its step, the probe loss at the unmoved weights, the probe forward passes it
    cost, the common factor of the joint line (None when not applied) and the group decisions."""

    step: int
    loss: float
    forwards: int
    joint_scale: float | None
    groups: list[GroupDecision] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The record as plain dicts and numbers (the shape of ``HiDLR.history`` entries)."""
        return asdict(self)
