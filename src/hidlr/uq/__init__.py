"""Uncertainty-aware regression: predictive Gaussian mixtures, proper metrics, tasks and data."""

from hidlr.uq.distributions import GaussianMixture

__all__ = ["GaussianMixture"]
