"""The UCI protocol's calibration step and its validation-based model choice.

Each split's validation part is halved: the *tuning* half chooses hyperparameters and the epoch
(early stopping), the *calibration* half is never seen by the model or its tuning. The model
trained on the fit part (at its best epoch) is calibrated on the calibration half with each
calibrator of :mod:`hidlr.uq.calibration` and scored on the test rows: coverage and width of the
90% and 95% intervals, and the log-likelihood of the PIT-recalibrated distribution. Rows are
exchangeable, so each calibrator's coverage is at least nominal (marginally over splits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hidlr.bench import reporting as rep

CALIBRATORS = ("pit", "cqr", "recalibrate")
LEVELS = (0.9, 0.95)


def split_validation(val_idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tune_idx, cal_idx)``: the validation rows halved at random (seeded), each sorted."""
    perm = np.random.default_rng(10_000 + seed).permutation(np.asarray(val_idx))
    half = perm.size // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def calibrated_scores(
    model: Any, X_cal: np.ndarray, y_cal: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """Raw and calibrated interval scores of a fitted ``model`` on the test rows."""
    import torch

    from hidlr.uq.calibration import ConformalPIT, ConformalQuantile, PITRecalibration

    makers = {"pit": ConformalPIT, "cqr": ConformalQuantile, "recalibrate": PITRecalibration}
    dist_c, dist_t = model.predict_proba(X_cal), model.predict_proba(X_test)
    yt = torch.as_tensor(y_test, dtype=torch.float64)

    def cover(lo: Any, hi: Any) -> dict[str, float]:
        lo, hi = lo.double().cpu(), hi.double().cpu()
        return {"cov": float(((yt >= lo) & (yt <= hi)).double().mean()), "width": float((hi - lo).mean())}

    out: dict[str, Any] = {
        "n_cal": int(len(y_cal)),
        "n_test": int(len(y_test)),
        "raw": {str(c): cover(*dist_t.interval(c)) for c in LEVELS},
        "raw_ll": float(dist_t.log_prob(yt.to(dist_t.loc.dtype)).double().mean()),
    }
    for name, make in makers.items():
        cal = make().fit(dist_c, torch.as_tensor(y_cal, dtype=torch.float64))
        out[name] = {str(c): cover(*cal.interval(dist_t, c)) for c in LEVELS}
        if name == "recalibrate":
            ll = cal.distribution(dist_t).log_prob(yt.to(dist_t.loc.dtype))
            out["recalibrated_ll"] = float(ll.mean()) if bool(torch.isfinite(ll).all()) else -math.inf
    return out


def coverage_band(level: float, n_cal: float, n_test: float, splits: int, sigmas: float = 3.0) -> tuple[float, float]:
    """The range the mean coverage over ``splits`` splits should fall in: from ``level`` minus
    ``sigmas`` standard errors (calibration-set and test-set spread) to ``level + 1/(n_cal + 1)``
    plus as many."""
    se = math.sqrt(level * (1 - level) * (1 / (n_cal + 2) + 1 / n_test) / max(splits, 1))
    return level - sigmas * se, level + 2 / (n_cal + 1) + sigmas * se


def _mean_se_or_inf(values: Sequence[float | None], missing: float = math.inf) -> dict[str, float]:
    """Mean ± s.e.; an infinite value (an interval end beyond the calibration rows' reach, or a
    log-likelihood of -inf; stored as ``None`` in JSON, read as ``missing``) makes the mean infinite."""
    vals = [missing if v is None else float(v) for v in values]
    if all(math.isfinite(v) for v in vals):
        return rep.mean_se(vals)
    return {"mean": sum(vals) / len(vals), "se": math.nan, "n": len(vals)}


def summarize_calibration(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """set -> model -> optimizer -> calibrator -> level -> coverage and width (mean ± s.e.) and band."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("calibrated"):
            groups.setdefault((r["set"], r["model"], r["optimizer"]), []).append(r["calibrated"])
    out: dict[str, Any] = {}
    for (s, m, o), cs in sorted(groups.items()):
        n_cal = float(np.mean([c["n_cal"] for c in cs]))
        n_test = float(np.mean([c["n_test"] for c in cs]))
        entry: dict[str, Any] = {
            "splits": len(cs),
            "n_cal": n_cal,
            "raw_ll": _mean_se_or_inf([c["raw_ll"] for c in cs], -math.inf),
            "recalibrated_ll": _mean_se_or_inf([c["recalibrated_ll"] for c in cs], -math.inf),
        }
        for name in ("raw", *CALIBRATORS):
            entry[name] = {}
            for lvl in LEVELS:
                cov = rep.mean_se([c[name][str(lvl)]["cov"] for c in cs])
                lo, hi = coverage_band(lvl, n_cal, n_test, len(cs))
                widths = [c[name][str(lvl)]["width"] for c in cs]
                entry[name][str(lvl)] = {
                    "cov": cov,
                    "width": _mean_se_or_inf(widths),
                    "band": [lo, hi],
                    "in_band": lo <= cov["mean"] <= hi,
                }
        out.setdefault(s, {}).setdefault(m, {})[o] = entry
    return out


def chosen_by_validation(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per set: in each split the (model, optimizer) with the highest validation log-likelihood
    (on the tuning half, by the model trained on the fit part), and its test metrics."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("metrics") is not None and r.get("val_ll") is not None and math.isfinite(r["val_ll"]):
            by.setdefault((r["set"], r["split"]), []).append(r)
    picks: dict[str, list[dict[str, Any]]] = {}
    for (s, _), rs in sorted(by.items()):
        picks.setdefault(s, []).append(max(rs, key=lambda r: r["val_ll"]))
    out: dict[str, Any] = {}
    for s, ps in picks.items():
        counts: dict[str, int] = {}
        for p in ps:
            key = f"{p['model']} ({p['optimizer']})"
            counts[key] = counts.get(key, 0) + 1
        out[s] = {
            "ll": rep.mean_se([p["metrics"]["ll"] for p in ps]),
            "rmse": rep.mean_se([p["metrics"]["rmse"] for p in ps]),
            "cov90": rep.mean_se([p["metrics"]["cov90"] for p in ps]),
            "choices": counts,
        }
    return out
