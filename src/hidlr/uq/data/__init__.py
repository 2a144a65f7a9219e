"""Data for uncertainty-aware regression: synthetic tasks with exact densities, UCI benchmark sets."""

from hidlr.uq.data.synthetic import (
    TASKS,
    Bimodal,
    BishopInverse,
    Gap,
    Heteroscedastic,
    SyntheticTask,
    get_task,
)

__all__ = [
    "TASKS", "Bimodal", "BishopInverse", "Gap", "Heteroscedastic", "SyntheticTask", "get_task",
]
