"""Exact curvature by Hessian-vector products, per parameter group (never a dense Hessian).

- :func:`along`: ``b_k = G_k . d_k`` and ``A_kl = d_k^T H_kl d_l`` along given update directions
  (what Hi-DLR's forward probes estimate);
- :func:`top_eigenvalues`: the largest eigenvalue of each diagonal block ``H_kk`` (Lanczos);
- :func:`hutchinson_traces`: ``trace(H_kk)`` per group (Hutchinson, Rademacher probes);
- :func:`in_float64`: a context in which a module computes in float64 and after which it is restored.
"""

from hidlr.curvature.directional import Directional, along
from hidlr.curvature.precision import in_float64
from hidlr.curvature.spectrum import Traces, hutchinson_traces, top_eigenvalues

__all__ = ["Directional", "Traces", "along", "hutchinson_traces", "in_float64", "top_eigenvalues"]
