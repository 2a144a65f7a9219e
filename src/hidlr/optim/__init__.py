"""The Hi-DLR engine: the optimizer wrapper, probe designs, quadratic fits, rate rules, checkpoints."""

from hidlr.optim.checkpoint import save_checkpoint
from hidlr.optim.guards import ProbeError
from hidlr.optim.hidlr import HiDLR

__all__ = ["HiDLR", "ProbeError", "save_checkpoint"]
