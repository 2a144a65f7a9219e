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
from hidlr.uq.data.uci import UCI_SETS, UCIDataset, UCISplit, find_uci_root, load_uci

__all__ = [
    "TASKS",
    "Bimodal",
    "BishopInverse",
    "Gap",
    "Heteroscedastic",
    "SyntheticTask",
    "get_task",
    "UCI_SETS",
    "UCIDataset",
    "UCISplit",
    "find_uci_root",
    "load_uci",
]
