"""Summaries of the UCI protocol's records: per set, model and optimizer means with standard errors,
and differences paired by split (Hi-DLR against Adam, one model against another)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hidlr.bench import reporting as rep


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """set -> model -> optimizer -> metric -> mean ± s.e. over splits (and pooled reliability)."""
    out: dict[str, Any] = {}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    failed: dict[tuple[str, str, str], int] = {}
    for r in records:
        k = (r["set"], r["model"], r["optimizer"])
        if r.get("metrics") is None:
            failed[k] = failed.get(k, 0) + 1
            groups.setdefault(k, [])
        else:
            groups.setdefault(k, []).append(r)
    for (s, m, o), rs in sorted(groups.items()):
        if not rs:
            continue
        stats: dict[str, Any] = {"failed": failed.get((s, m, o), 0)}
        for k in ("ll", "rmse", "crps", "cov90", "cov95", "width90", "width95", "calibration_error"):
            stats[k] = rep.mean_se([r["metrics"][k] for r in rs])
        stats["reliability"] = np.mean([r["metrics"]["reliability"] for r in rs], axis=0).tolist()
        stats["time_s"] = float(sum(r["tune_s"] + r["fit_s"] for r in rs))  # successful runs only
        stats["epochs"] = rep.mean_se([r["epochs"] for r in rs])
        out.setdefault(s, {}).setdefault(m, {})[o] = stats
    return out


def _paired_by_split(
    records: Sequence[dict[str, Any]], field: str, a: str, b: str, within: str, metric: str
) -> dict[str, Any]:
    """Per set and value of ``within``: ``metric`` of records with ``field == a`` minus those with
    ``field == b``, paired by split (mean ± s.e.); splits missing either side are left out."""
    by: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in records:
        if r.get("metrics") is not None and r[field] in (a, b):
            by.setdefault((r["set"], r[within], r["split"]), {})[r[field]] = r["metrics"][metric]
    diffs: dict[tuple[str, str], list[float]] = {}
    for (s, w, _), d in by.items():
        if a in d and b in d:
            diffs.setdefault((s, w), []).append(d[a] - d[b])
    out: dict[str, Any] = {}
    for (s, w), v in sorted(diffs.items()):
        out.setdefault(s, {})[w] = rep.mean_se(v)
    return out


def paired_difference(records: Sequence[dict[str, Any]], metric: str = "ll") -> dict[str, Any]:
    """Per set and model: Hi-DLR minus Adam on ``metric``, paired by split (mean ± s.e.)."""
    return _paired_by_split(records, "optimizer", "hidlr", "adam", "model", metric)


#: (a, b) model pairs whose paired difference bears on the paper's claims: likelihood-based
#: mixtures against the variational BNN, with and without ensembling or Bayesian weights.
CONTRASTS = (("mdn", "bnn"), ("mdn_ensemble", "bnn"), ("bayesian_mdn", "bnn"), ("bayesian_mdn", "mdn"))


def model_contrast(records: Sequence[dict[str, Any]], a: str, b: str, metric: str = "ll") -> dict[str, Any]:
    """Per set and optimizer: model ``a`` minus model ``b`` on ``metric``, paired by split (mean ± s.e.)."""
    return _paired_by_split(records, "model", a, b, "optimizer", metric)
