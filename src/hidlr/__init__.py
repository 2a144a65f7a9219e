"""hidlr: Hessian-informed differential learning rates for PyTorch, and uncertainty-aware regression.

- :class:`HiDLR` wraps any ``torch.optim`` optimizer and keeps choosing each param group's learning
  rate from curvature probes (a few extra forward passes every few steps).
- :mod:`hidlr.groups` builds param groups (by layer, by kind, head vs body, name patterns, LoRA A/B).
- :mod:`hidlr.curvature` computes exact per-group curvature by Hessian-vector products (diagnosis).
- :mod:`hidlr.uq`: uncertainty-aware regression (MDNs, BNNs, ensembles, predictive mixtures, metrics).
"""

from hidlr import curvature, groups, uq
from hidlr.optim import HiDLR, ProbeError, save_checkpoint

__all__ = ["HiDLR", "ProbeError", "curvature", "groups", "save_checkpoint", "uq"]
__version__ = "0.1.0"
