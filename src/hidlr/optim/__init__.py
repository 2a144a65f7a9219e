"""The Hi-DLR engine: the optimizer wrapper, probe designs, quadratic fits and rate rules."""

from hidlr.optim.hidlr import HiDLR, ProbeError

__all__ = ["HiDLR", "ProbeError"]
