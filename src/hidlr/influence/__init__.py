"""Influence of each param group from Hi-DLR's curvature fits, and freezing plans built from it.

- ``opt.influence`` (on a running :class:`~hidlr.HiDLR`): per group, the loss decrease its fitted
  quadratic predicts for a step on that group alone, ``b_k^2 / (2 a_k)`` (loss units).
- :func:`influence_table` / :func:`format_table`: groups ranked by influence, with the
  per-parameter score ``b_k^2 / (a_k n_k)``.
- :func:`freeze`: freeze the lowest-influence groups of a running HiDLR until the trainable
  parameters fit a budget (an exact 0/1 knapsack; ``max_reach=`` keeps the plan to the groups nearest
  the output, so that the backward pass stops early), returning the :class:`FreezePlan`;
  :func:`plan_for` plans without freezing; :func:`apply_plan` transfers a plan to another model
  of the same family by parameter names.
"""

from hidlr.influence.plans import (
    FreezePlan,
    apply_plan,
    freeze,
    freeze_groups,
    knapsack,
    plan_for,
    plan_from_scores,
)
from hidlr.influence.scores import (
    InfluenceRow,
    format_table,
    influence_from_history,
    influence_table,
    predicted_decrease,
)

__all__ = [
    "FreezePlan",
    "InfluenceRow",
    "apply_plan",
    "format_table",
    "freeze",
    "freeze_groups",
    "influence_from_history",
    "influence_table",
    "knapsack",
    "plan_for",
    "plan_from_scores",
    "predicted_decrease",
]
