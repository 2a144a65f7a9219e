"""hidlr: Hessian-informed differential learning rates for PyTorch, and uncertainty-aware regression.

- :class:`HiDLR` wraps any ``torch.optim`` optimizer and keeps choosing each param group's learning
  rate from curvature probes (a few extra forward passes every few steps).
- :mod:`hidlr.groups` builds param groups (by layer, by kind, head vs body, name patterns, LoRA A/B).
- :mod:`hidlr.curvature` computes exact per-group curvature by Hessian-vector products (diagnosis).
- :mod:`hidlr.influence` ranks groups by the loss decrease Hi-DLR's fits predict for them, and
  freezes the least influential under a parameter budget (parameter-efficient fine-tuning).
"""

from hidlr import curvature, groups, influence
from hidlr.optim import HiDLR, ProbeError

__all__ = ["HiDLR", "ProbeError", "curvature", "groups", "influence"]
__version__ = "0.1.0"
