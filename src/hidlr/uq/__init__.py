"""Uncertainty-aware regression: predictive Gaussian mixtures, proper metrics, tasks and data."""

from hidlr.uq.distributions import GaussianMixture

__all__ = ["GaussianMixture"]

from hidlr.uq.models import BNN, MDN, BayesianLinear  # noqa: E402

__all__ += ["BNN", "MDN", "BayesianLinear"]
