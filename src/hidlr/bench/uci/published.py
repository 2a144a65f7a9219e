"""Published UCI results (RMSE and test log-likelihood per point) to print beside ours.

All figures are copied from the cited papers for the standard 20-split protocol
(Hernández-Lobato & Adams 2015); log-likelihoods are per test point in original units (higher is
better; a paper that reports NLL is negated here). ``None`` marks a figure we do not quote.
Spreads: MC dropout reports standard errors; the deep-ensembles paper reports standard deviations
over splits, which we do not copy.
"""

from __future__ import annotations

SOURCES: dict[str, str] = {
    "PBP": "Hernández-Lobato & Adams, Probabilistic Backpropagation for Scalable Learning of "
    "Bayesian Neural Networks, ICML 2015 (Table 1)",
    "VI": "Plain mean-field VI (Graves, Practical Variational Inference for Neural Networks, NIPS "
    "2011), as reported in Gal & Ghahramani 2016 (Table 1)",
    "MC dropout": "Gal & Ghahramani, Dropout as a Bayesian Approximation, ICML 2016 (Table 1)",
    "MC dropout 2018": "Re-run of the MC-dropout experiments with validation-set tuning and 10x "
    "epochs (Gal, DropoutUncertaintyExps repository, updated results 2018)",
    "Deep ensembles": "Lakshminarayanan, Pritzel & Blundell, Simple and Scalable Predictive "
    "Uncertainty Estimation using Deep Ensembles, NeurIPS 2017 (Table 1, 5 nets)",
    "NGBoost": "Duan et al., NGBoost: Natural Gradient Boosting for Probabilistic Prediction, ICML 2020 (Table 1)",
    "Deep evidential": "Amini et al., Deep Evidential Regression, NeurIPS 2020 (Table 1)",
    "WGBoost": "Matsubara et al., Wasserstein Gradient Boosting, arXiv 2405.09536v2 (Table 1, which also "
    "compiles the best published test NLL per set)",
}

SETS = ("concrete", "energy", "kin8nm", "wine-quality-red", "yacht")

# method -> set -> {"rmse": (mean, se or None) | None, "ll": (mean, se or None) | None}
PUBLISHED: dict[str, dict[str, dict[str, tuple[float, float | None] | None]]] = {
    "PBP": {
        "concrete": {"rmse": (5.67, None), "ll": (-3.16, None)},
        "energy": {"rmse": (1.80, None), "ll": (-2.04, None)},
        "kin8nm": {"rmse": (0.10, None), "ll": (0.90, None)},
        "wine-quality-red": {"rmse": (0.64, None), "ll": (-0.97, None)},
        "yacht": {"rmse": (1.02, None), "ll": (-1.63, None)},
    },
    "VI": {
        "concrete": {"rmse": None, "ll": (-3.39, None)},
        "energy": {"rmse": None, "ll": (-2.39, None)},
        "kin8nm": {"rmse": None, "ll": (0.90, None)},
        "wine-quality-red": {"rmse": None, "ll": (-0.98, None)},
        "yacht": {"rmse": None, "ll": (-3.44, None)},
    },
    "MC dropout": {
        "concrete": {"rmse": (5.23, 0.12), "ll": (-3.04, 0.02)},
        "energy": {"rmse": (1.66, 0.04), "ll": (-1.99, 0.02)},
        "kin8nm": {"rmse": (0.10, 0.00), "ll": (0.95, 0.01)},
        "wine-quality-red": {"rmse": (0.62, 0.01), "ll": (-0.93, 0.01)},
        "yacht": {"rmse": (1.11, 0.09), "ll": (-1.55, 0.03)},
    },
    "MC dropout 2018": {
        "concrete": {"rmse": None, "ll": (-2.93, 0.02)},
        "energy": {"rmse": None, "ll": (-1.21, 0.01)},
        "kin8nm": {"rmse": None, "ll": (1.14, 0.01)},
        "wine-quality-red": {"rmse": None, "ll": (-0.93, 0.01)},
        "yacht": {"rmse": None, "ll": (-1.25, 0.01)},
    },
    "Deep ensembles": {
        "concrete": {"rmse": (6.03, None), "ll": (-3.06, None)},
        "energy": {"rmse": (2.09, None), "ll": (-1.38, None)},
        "kin8nm": {"rmse": (0.09, None), "ll": (1.20, None)},
        "wine-quality-red": {"rmse": (0.64, None), "ll": (-0.94, None)},
        "yacht": {"rmse": (1.58, None), "ll": (-1.18, None)},
    },
    "NGBoost": {
        "concrete": {"rmse": None, "ll": (-3.04, None)},
        "energy": {"rmse": None, "ll": (-0.60, None)},
        "kin8nm": {"rmse": None, "ll": (0.49, None)},
        "wine-quality-red": {"rmse": None, "ll": (-0.91, None)},
        "yacht": {"rmse": None, "ll": (-0.20, None)},
    },
    "WGBoost": {
        "concrete": {"rmse": None, "ll": (-2.83, None)},
        "energy": {"rmse": None, "ll": (-0.53, None)},
        "kin8nm": {"rmse": None, "ll": None},
        "wine-quality-red": {"rmse": None, "ll": None},
        "yacht": {"rmse": None, "ll": (-0.16, None)},
    },
    "Deep evidential": {
        "concrete": {"rmse": None, "ll": (-3.01, None)},
        "energy": {"rmse": None, "ll": (-1.39, None)},
        "kin8nm": {"rmse": None, "ll": (1.24, None)},
        "wine-quality-red": {"rmse": None, "ll": (-0.89, None)},
        "yacht": {"rmse": None, "ll": (-1.03, None)},
    },
}


def published(method: str, dataset: str, metric: str) -> tuple[float, float | None] | None:
    """The published ``(mean, se)`` of ``metric`` ("rmse" or "ll"), or None if not quoted."""
    if metric not in ("rmse", "ll"):
        raise ValueError(f"unknown metric {metric!r}; use 'rmse' or 'll'")
    return PUBLISHED.get(method, {}).get(dataset, {}).get(metric)


def fmt_published(method: str, dataset: str, metric: str) -> str:
    """'m ± s', 'm' or '—' for the table."""
    v = published(method, dataset, metric)
    if v is None:
        return "—"
    m, s = v
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"


#: The best published test NLL per set on the standard splits (lower is better) and who holds it, as
#: compiled in Table 1 of the WGBoost paper. Our reports use LL = -NLL: compare with ``-nll``.
BEST_PUBLISHED_NLL: dict[str, tuple[float, str]] = {
    "concrete": (2.83, "WGBoost"),
    "energy": (0.53, "WGBoost"),
    "kin8nm": (-1.24, "Deep evidential"),
    "wine-quality-red": (0.89, "Deep evidential"),
    "yacht": (0.16, "WGBoost"),
}
