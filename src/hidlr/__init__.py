"""hidlr: Hessian-informed differential learning rates for PyTorch, and uncertainty-aware regression.

- :class:`HiDLR` wraps any ``torch.optim`` optimizer and keeps choosing each param group's learning
  rate from curvature probes (a few extra forward passes every few steps).
- :mod:`hidlr.probes` holds the probe closures (:class:`BatchProbe`, :class:`DataProbe`,
  :class:`LatestBatchProbe`, :class:`ClosureProbe`) with the probe rules: eval mode for dropout, frozen normalization
  statistics, common random numbers.
- :mod:`hidlr.integrations` connects HiDLR to Lightning and the Transformers Trainer (imported on
  demand; neither framework is needed otherwise).
- :mod:`hidlr.groups` builds param groups (by layer, by kind, head vs body, name patterns, LoRA A/B).
- :mod:`hidlr.curvature` computes exact per-group curvature by Hessian-vector products (diagnosis).
- :mod:`hidlr.influence` ranks groups by the loss decrease Hi-DLR's fits predict for them, and
  freezes the least influential under a parameter budget (parameter-efficient fine-tuning).
- :mod:`hidlr.uq`: uncertainty-aware regression (MDNs, BNNs, ensembles, predictive mixtures, metrics).
"""

from hidlr import curvature, groups, influence, probes, uq
from hidlr.optim import HiDLR, ProbeError, save_checkpoint
from hidlr.probes import BatchProbe, ClosureProbe, DataProbe, LatestBatchProbe

__all__ = [
    "BatchProbe",
    "ClosureProbe",
    "DataProbe",
    "HiDLR",
    "LatestBatchProbe",
    "ProbeError",
    "curvature",
    "groups",
    "influence",
    "probes",
    "save_checkpoint",
    "uq",
]
__version__ = "0.1.0"
