"""hidlr: Hessian-informed differential learning rates for PyTorch, and uncertainty-aware regression.

- :class:`HiDLR` wraps any ``torch.optim`` optimizer and keeps choosing each param group's learning
  rate from curvature probes (a few extra forward passes every few steps).
- :mod:`hidlr.groups` builds param groups (by layer, by kind, head vs body, name patterns, LoRA A/B).
- :mod:`hidlr.curvature` computes exact per-group curvature by Hessian-vector products (diagnosis).
"""

from hidlr import curvature, groups
from hidlr.optim import HiDLR, ProbeError

__all__ = ["HiDLR", "ProbeError", "curvature", "groups"]
__version__ = "0.1.0"
