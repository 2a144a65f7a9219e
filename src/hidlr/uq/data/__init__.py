"""Data for uncertainty-aware regression: synthetic tasks with exact densities, rotated digits (image
regression of the angle with a known conditional law, :mod:`hidlr.uq.data.rotdigits`), UCI benchmark sets,
and the VADER lexicon's per-token human ratings (:mod:`hidlr.uq.data.lexicon`)."""

from hidlr.uq.data.lexicon import Lexicon, LexiconSplit, load_lexicon, split_lexicon
from hidlr.uq.data.rotdigits import RotatedDigits, RotatedDigitsTask
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
    "RotatedDigits",
    "RotatedDigitsTask",
    "SyntheticTask",
    "get_task",
    "UCI_SETS",
    "UCIDataset",
    "UCISplit",
    "find_uci_root",
    "load_uci",
    "Lexicon",
    "LexiconSplit",
    "load_lexicon",
    "split_lexicon",
]
