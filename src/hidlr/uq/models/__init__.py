"""Uncertainty-aware regressors: ``fit(X, y)`` / ``predict(X) -> GaussianMixture`` estimators.

Estimators (NumPy or tensors in, predictive mixtures in the original units of ``y`` out):
:class:`MDN`, :class:`BNN`. Each wraps an ordinary ``nn.Module`` (``estimator.module`` after
``fit``; or build one directly: :class:`MDNNet`, :class:`BNNNet`) with ``loss(x, y)`` and
``forward(x) -> GaussianMixture`` in standardized units, for use in a custom training loop.
"""

from hidlr.uq.models.bnn import BNN, BNNNet
from hidlr.uq.models.estimator import Estimator
from hidlr.uq.models.layers import BayesianLinear, bayesian_kl
from hidlr.uq.models.mdn import MDN, MDNNet, mixture_collapse_penalty

__all__ = [
    "BNN",
    "BNNNet",
    "BayesianLinear",
    "Estimator",
    "MDN",
    "MDNNet",
    "bayesian_kl",
    "mixture_collapse_penalty",
]
