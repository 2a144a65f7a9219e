"""When Hi-DLR refreshes and how a known step budget shapes the rates over time (pure functions on
plain numbers, beside the rate rules of :mod:`hidlr.optim.rules`).

- :func:`next_refresh`, :func:`arrival_is_free` and :func:`probe_order`: the automatic refresh
  schedule under the probe budget, which refreshes it does not charge, and which groups a refresh
  probes;
- :func:`may_grow`, :func:`growth_config` and :func:`anneal_factor`: with ``total_steps``, rates may
  grow only early in the run (or until they arrive), and fall to 0 over its last ``anneal``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from hidlr.optim.rules import TRAVEL_LIMIT, RuleConfig


# ----------------------------------------------------------------------------- step budget
def may_grow(config: RuleConfig, t: int, arrived: bool) -> bool:
    """Whether a refresh at step ``t`` may raise a rate: always without ``total_steps``, else during
    the first ``grow_window`` of it, and after it until the rates have ``arrived`` (a refresh had
    every target inside the clip: a start rate far below the fitted one still travels up)."""
    return config.total_steps is None or t < config.grow_window * config.total_steps or not arrived


def anneal_factor(config: RuleConfig, t: int) -> float:
    """The factor on every applied rate at step ``t`` (0-based): 1 until the last ``anneal`` of
    ``total_steps``, then falling linearly to 0 at step ``total_steps`` (and 0 after it); 1 without
    ``total_steps`` or ``anneal``. The one-step Newton rate is greedy: over the rest of a run a
    smaller rate ends lower, and the end of a run has no rest (``docs/diagnosis.md``, round 4)."""
    if config.total_steps is None or config.anneal is None:
        return 1.0
    remaining = (config.total_steps - t) / (config.anneal * config.total_steps)
    return min(1.0, max(0.0, remaining))


def growth_config(config: RuleConfig, t: int, arrived: bool) -> RuleConfig:
    """The rules of a refresh at step ``t``: past the growth window (:func:`may_grow`) the clip's upper
    bound is 1, so rates may only fall. Late in training the curvature along the update fades (a
    saturating loss, a fitted training set) and the one-step Newton rate keeps growing while the
    loss that matters no longer gains from it (``docs/diagnosis.md``, round 3)."""
    if may_grow(config, t, arrived) or config.clip is None:
        return config
    return replace(config, clip=(config.clip[0], min(1.0, config.clip[1])))


# -------------------------------------------------------------------------------- schedule
def next_refresh(
    t: int, period: int, forwards: int, spent: int, max_every: int | None, config: RuleConfig, travelling: bool = False
) -> tuple[int, int]:
    """The auto schedule after a refresh at step ``t`` that cost ``forwards`` probe forward passes
    (``spent``: all refreshes' so far, this one included). Returns (next refresh step, new period).

    The period doubles, up to ``max_every``, or (None) to the period at which refreshes of this
    cost use ``probe_share`` of the training compute (a training step costs about 3 forward
    passes). With ``max_every`` None, a refresh also waits until the probe forwards so far stay
    within ``probe_credit + 3 * probe_share * step``: early refreshes come fast while the credit
    lasts, and the probes' share of the first steps is bounded whatever their cost (the number of
    groups). ``travelling`` (see ``RuleConfig.travel``): the period restarts at 1, within that credit.
    """
    rate = 3.0 * config.probe_share
    cap = max_every or max(1, math.ceil(forwards / rate))
    period = 1 if travelling else min(cap, 2 * period)
    step = t + period
    if max_every is None:
        step = max(step, math.ceil((spent + forwards - config.probe_credit) / rate))
    return step, period


def arrival_is_free(config: RuleConfig, refreshes: int, forwards: int) -> bool:
    """Whether a refresh before the rates first arrive is left uncharged to the probe credit, after
    ``refreshes`` such refreshes that cost ``forwards`` probe forward passes (travel's aside): for at
    most ``TRAVEL_LIMIT`` of them, and with ``total_steps`` only while those forwards are below the
    whole run's probe share (``3 * probe_share * total_steps``). From a far start rate, travel
    alternates with per-group refreshes, which would otherwise spend the credit before the rates
    arrive (``docs/diagnosis.md``, round 20); in a short run the same free refreshes would come
    early, many, and at a cost that matters, while a fresh head is still random (round 21)."""
    if refreshes >= TRAVEL_LIMIT:
        return False
    return config.total_steps is None or forwards < 3.0 * config.probe_share * config.total_steps


def probe_order(active: Sequence[bool], last_probed: Sequence[int], limit: int | None) -> list[bool]:
    """Which active groups a refresh probes: all when ``limit`` is None or not smaller than their
    number, else the ``limit`` probed longest ago (``last_probed``: the refresh that last probed
    each group, -1 for never; ties by group order), so every group takes its turn."""
    idx = [k for k in range(len(active)) if active[k]]
    if limit is None or len(idx) <= limit:
        return list(map(bool, active))
    chosen = set(sorted(idx, key=lambda k: (last_probed[k], k))[:limit])
    return [k in chosen for k in range(len(active))]
