"""Uncertainty-aware regression: predictive Gaussian mixtures, proper metrics, tasks and data."""

from hidlr.uq import calibration, data, metrics
from hidlr.uq.distributions import GaussianMixture

__all__ = ["GaussianMixture", "calibration", "data", "metrics"]

from hidlr.uq.models import (
    BNN,
    MDN,
    BayesianLinear,
    BayesianMDN,
    ConformalRegressor,
    DeepEnsemble,
    LastLayerLaplace,
    MCDropout,
    MDNEnsemble,
)

__all__ += [
    "BNN",
    "MDN",
    "BayesianLinear",
    "BayesianMDN",
    "ConformalRegressor",
    "DeepEnsemble",
    "LastLayerLaplace",
    "MCDropout",
    "MDNEnsemble",
]
