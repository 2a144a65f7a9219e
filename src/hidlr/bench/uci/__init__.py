"""The UCI regression protocol (Hernández-Lobato & Adams 2015) for the uncertainty-aware models.

For every set and standard split: one hidden layer of 50 ReLU units; each model once with Hi-DLR
(the models' default) and once with Adam; besides them a wide MDN ensemble (two hidden layers of
100, a longer budget) with Hi-DLR, which competes only for the validation-chosen model.
Hyperparameters (Adam's rate, the number of epochs, the dropout rate, the number of mixture
components) are chosen on a validation part carved out of the split's training rows only; the
model is then refitted on the whole training split with the chosen values, keeps the spread factor
that variance scaling fitted on the tuning rows (:mod:`~hidlr.uq.models.spread`), and is scored
once on the test rows, in the target's original units.

Entry point: :func:`run`. Results: ``results.json``, ``report.md`` and reliability plots.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hidlr.bench import harness
from hidlr.bench.uci.budget import Budget, budget_for, carve_validation, model_budget, patience_for
from hidlr.bench.uci.calibrated import calibrated_scores, chosen_by_validation, split_validation, summarize_calibration
from hidlr.bench.uci.models import (
    DEFAULT_MODELS,
    MODELS,
    OPTIMIZERS,
    TUNE_AS,
    build_model,
    tuning_grid,
)
from hidlr.bench.uci.summary import CONTRASTS, model_contrast, paired_difference, summarize

SETS = ("concrete", "energy", "kin8nm", "wine-quality-red", "yacht")
LEVELS = tuple(float(v) for v in np.round(np.linspace(0.05, 0.95, 19), 2))
PARTIAL, HEADER = "partial.jsonl", "run_header.json"
#: Monte Carlo passes of the stochastic models' validation NLL, computed after every tuning epoch
#: (test scores use each model's default, 50-100): fewer passes than at test time, since the
#: per-epoch validation of the stochastic models otherwise costs more than their training (chosen
#: by comparing tuning time and the chosen rate and epoch at 5, 10 and 20 passes on kin8nm).
VALIDATION_SAMPLES = 10


def _score(dist: Any, y: np.ndarray) -> dict[str, Any]:
    """Test metrics of a predictive mixture in original units (per point)."""
    import torch

    from hidlr.uq import metrics

    yt = torch.as_tensor(y, dtype=dist.loc.dtype)
    out = {
        "ll": -float(metrics.nll(dist, yt)),
        "rmse": float(metrics.rmse(dist, yt)),
        "crps": float(metrics.crps(dist, yt)),
        "cov90": float(metrics.coverage(dist, yt, 0.9)),
        "cov95": float(metrics.coverage(dist, yt, 0.95)),
        "width90": float(metrics.interval_width(dist, 0.9)),
        "width95": float(metrics.interval_width(dist, 0.95)),
    }
    _, observed = metrics.reliability(dist, yt, list(LEVELS), kind="central")
    out["reliability"] = [float(v) for v in observed]
    out["calibration_error"] = float(metrics.calibration_error(dist, yt))
    return out


def _val_curve(est: Any) -> list[float]:
    return [float(h["val_nll"]) for h in est.history_]


_FIT_ERRORS = (FloatingPointError, RuntimeError, ValueError)


def tune_candidates(
    key: str,
    optimizer: str,
    quick: bool,
    budget: Budget,
    Xf: np.ndarray,
    yf: np.ndarray,
    Xv: np.ndarray,
    yv: np.ndarray,
    seed: int,
) -> list[tuple[dict[str, Any], list[float] | None, str | None, Any]]:
    """Train every candidate of :func:`tuning_grid` on the fit part, stopping early on the validation
    rows and keeping each one's best epoch; ``(hp, validation curve, error, fitted estimator)`` each.

    Candidates that differ only in learning rate train side by side as one stacked net
    (:func:`~hidlr.uq.models.stacked.fit_side_by_side` with learning-rate scales; the same
    initial weights and minibatches as separate fits, and with Adam the same trajectories up to
    its ``eps``). If a stacked fit fails, its candidates are retried one by one.
    """
    from hidlr.uq.models.stacked import fit_side_by_side

    by_rest: dict[tuple, list[dict[str, Any]]] = {}
    for hp in tuning_grid(key, optimizer, quick):
        by_rest.setdefault(tuple(sorted((k, v) for k, v in hp.items() if k != "lr")), []).append(hp)
    fit = {
        "epochs": budget.max_epochs,
        "batch_size": budget.batch_size,
        "optimizer": optimizer,
        "validation_data": (Xv, yv),
        "validation_samples": VALIDATION_SAMPLES,
    }
    out: list[tuple[dict[str, Any], list[float] | None, str | None, Any]] = []
    patience = patience_for(budget)
    for hps in by_rest.values():
        if len(hps) > 1:  # a single candidate trains on its own: stacking one net only adds overhead
            lr0 = hps[0]["lr"]
            try:
                ests = fit_side_by_side(
                    [build_model(key, hp, budget.batch_size, patience) for hp in hps],
                    Xf,
                    yf,
                    seeds=[seed] * len(hps),
                    lr_scales=[hp["lr"] / lr0 for hp in hps],
                    lr=lr0,
                    **fit,
                )
                out += [(hp, _val_curve(est), None, est) for hp, est in zip(hps, ests)]
                continue
            except _FIT_ERRORS:
                pass  # retried one by one below, so that one diverging rate does not sink the others
        for hp in hps:
            try:
                est = build_model(key, hp, budget.batch_size, patience).fit(Xf, yf, lr=hp["lr"], seed=seed, **fit)
                out.append((hp, _val_curve(est), None, est))
            except _FIT_ERRORS as err:
                out.append((hp, None, f"{type(err).__name__}: {err}", None))
    return out


def run_split(
    X: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    split: int,
    models: Sequence[str],
    optimizer: str,
    quick: bool,
    budget_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Tune on half of the validation part, calibrate on the other half, refit on the training
    split, score on the test split (``budget_steps``: every model's steps at the epoch cap, see
    :func:`budget_for`; ``None``: the set's default, or a model's own, see :func:`model_budget`).

    X: (n, d), y: (n,) original units. Returns one record per model: test metrics of the refitted
    model, the validation log-likelihood and calibrated scores of the model trained on the fit part.
    """
    import torch

    torch.set_num_threads(1)
    val_frac = budget_for(train_idx.size, quick, budget_steps).val_frac  # the same for every model
    fit_idx, val_idx = carve_validation(X, y, train_idx, test_idx, val_frac, split)
    if np.intersect1d(val_idx, test_idx).size or np.intersect1d(train_idx, test_idx).size:
        raise RuntimeError("validation or training rows overlap the test rows")
    tune_idx, cal_idx = split_validation(val_idx, split)
    Xf, yf, Xv, yv = X[fit_idx], y[fit_idx], X[tune_idx], y[tune_idx]
    tuned: dict[str, tuple[dict[str, Any] | None, dict[str, Any], Any]] = {}
    records = []
    for model in models:
        t0, c0 = time.perf_counter(), time.process_time()
        key = TUNE_AS[model]
        tune_s = 0.0
        budget = model_budget(model, train_idx.size, quick, budget_steps)
        if key not in tuned:
            best: tuple[float, dict[str, Any], dict[str, Any], Any] | None = None
            trials = []
            for hp, curve, error, fitted in tune_candidates(key, optimizer, quick, budget, Xf, yf, Xv, yv, split):
                finite = [(v, i) for i, v in enumerate(curve or []) if math.isfinite(v)]
                if error is None and not finite:
                    error = "no finite validation NLL"
                if error is not None:
                    trials.append({"hp": hp, "val_nll": None, "epochs": None, "error": error})
                    continue
                v_best, i_best = min(finite)
                trials.append({"hp": hp, "val_nll": v_best, "epochs": i_best + 1})
                if best is None or v_best < best[0]:
                    best = (v_best, hp, {"epochs": i_best + 1, "val_nll": v_best}, fitted)
            tuned[key] = (
                (None, {"trials": trials}, None) if best is None else (best[1], {**best[2], "trials": trials}, best[3])
            )
            tune_s = time.perf_counter() - t0
        hp, chosen, part = tuned[key]
        rec: dict[str, Any] = {
            "split": split,
            "model": model,
            "optimizer": optimizer,
            "hp": hp,
            "epochs": chosen.get("epochs"),
            "val_nll": chosen.get("val_nll"),
            "tuned_as": key,
            "trials": chosen["trials"] if tune_s > 0 else None,
            "budget": asdict(budget),
            "tune_s": tune_s,
            "fit_s": 0.0,
            "metrics": None,
            "error": None,
        }
        if hp is None:
            rec["error"] = "every tuning candidate failed"
            rec["cpu_s"] = time.process_time() - c0
            records.append(rec)
            continue
        try:  # the model trained on the fit part (for an ensemble: trained now), scored and calibrated
            if model != key:
                part = None  # the tuned member is not the ensemble: nothing to carry if this fit fails
                part = build_model(model, hp, budget.batch_size, patience_for(budget)).fit(
                    Xf,
                    yf,
                    epochs=budget.max_epochs,
                    batch_size=budget.batch_size,
                    optimizer=optimizer,
                    lr=hp.get("lr"),
                    seed=split,
                    validation_data=(Xv, yv),
                    validation_samples=VALIDATION_SAMPLES,
                )
            rec["val_ll"] = part.score(Xv, yv)
            rec["calibrated"] = calibrated_scores(part, X[cal_idx], y[cal_idx], X[test_idx], y[test_idx])
        except _FIT_ERRORS as err:
            rec["calibration_failure"] = f"{type(err).__name__}: {err}"
        rec["calibrate_s"] = time.perf_counter() - t0 - tune_s
        t1 = time.perf_counter()
        try:
            est = build_model(model, hp, budget.batch_size)
            est.fit(
                X[train_idx],
                y[train_idx],
                epochs=chosen["epochs"],
                batch_size=budget.batch_size,
                optimizer=optimizer,
                lr=hp.get("lr"),
                seed=split,
            )
            rec["spread"] = carry_spread(part, est)
            hist = getattr(getattr(est, "optimizer_", None), "history", None)
            if hist is not None:  # Hi-DLR: how many refreshes (probe rounds) the final fit made
                rec["refreshes"] = len(hist)
                rec["steps"] = chosen["epochs"] * math.ceil(train_idx.size / budget.batch_size)
            scores = _score(est.predict_proba(X[test_idx]), y[test_idx])
            if not all(math.isfinite(v) for k, v in scores.items() if k != "reliability"):
                raise FloatingPointError(f"non-finite test metrics {scores}")
            rec["metrics"] = scores
        except _FIT_ERRORS as err:
            rec["error"] = f"{type(err).__name__}: {err}"
        rec["fit_s"] = time.perf_counter() - t1
        rec["cpu_s"] = time.process_time() - c0  # tuning (if done here) + final fit, this process only
        records.append(rec)
    return records


def carry_spread(part: Any, final: Any) -> float:
    """Give the final model the spread factors that variance scaling fitted on the tuning half for
    the model trained on the fit part (``part``; the member factors and an ensemble's own), as a
    refit keeps them; returns the model's factor (1.0 when ``part`` is missing)."""
    if part is None:
        return 1.0
    for mine, theirs in zip(getattr(final, "estimators_", [final]), getattr(part, "estimators_", [part])):
        mine.module_.set_spread(theirs.spread_)
        mine.spread_ = theirs.spread_
    final.spread_ = part.spread_
    return float(part.spread_)


def _job(args: tuple) -> tuple[str, list[dict[str, Any]], float, float]:
    name, X, y, tr, te, split, models, opt, quick, budget_steps = args
    t0, c0 = time.perf_counter(), time.process_time()
    recs = run_split(X, y, tr, te, split, models, opt, quick, budget_steps)
    for r in recs:
        r["set"] = name
    return name, recs, time.perf_counter() - t0, time.process_time() - c0


def load_set(
    name_or_path: str, root: Path | str | None
) -> tuple[str, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """``(name, X (n, d), y (n,), splits)`` for a set name under ``root`` or a folder path.

    ``splits``: the 20 standard ``(train_idx, test_idx)`` pairs. The estimators z-score inputs and
    targets with their own training rows and predict in original units, so raw arrays go in.
    """
    from hidlr.uq.data.uci import load_uci

    ds = load_uci(name_or_path, root)
    return ds.name, ds.X, ds.y, ds.split_indices(20)


def run(
    out_dir: str | Path = "benchmarks/results/uci",
    quick: bool = False,
    sets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    splits: int | Sequence[int] | None = None,
    optimizers: Sequence[str] | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    workers: int = 2,
    budget_steps: int | None = None,
) -> dict[str, Any]:
    """Run the protocol and write ``results.json``, ``report.md`` and reliability PNGs to ``out_dir``.

    sets: names under ``root`` or folder paths (default: the five standard sets); models: subset of
    :data:`MODELS`, run with every optimizer (default: each optimizer's line-up in
    :data:`DEFAULT_MODELS`: the wide MDN ensemble with Hi-DLR only); splits: a count (first k of
    the 20) or explicit indices (default 20, quick 2);
    optimizers: subset of ("hidlr", "adam"); root: the UCI folder (default: found by the loader);
    workers: processes running splits side by side (1 = in this process); budget_steps: optimizer
    steps at each model's epoch cap, for every model (default: 800, 1600 for sets of 3000 rows or
    more, and a model's own; see :func:`model_budget`). Returns the results dict.
    """
    from hidlr.bench.uci.report import write_report

    sets = list(sets or SETS)
    optimizers = list(optimizers or OPTIMIZERS)
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {o!r}; choose from {OPTIMIZERS}")
    lineup = {o: list(models) if models else list(DEFAULT_MODELS[o]) for o in optimizers}
    models = [m for m in MODELS if any(m in ms for ms in lineup.values())] if not models else list(models)
    for m in models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {MODELS}")
    if splits is None:
        splits = 2 if quick else 20
    split_ids = list(range(splits)) if isinstance(splits, int) else [int(s) for s in splits]
    out_dir = Path(out_dir)
    jobs, weights, data_info = [], [], {}
    loaded = {}
    for s in sets:
        name, X, y, all_splits = load_set(s, root)
        bad = [i for i in split_ids if not 0 <= i < len(all_splits)]
        if bad:
            raise ValueError(f"{name}: split indices {bad} out of range 0..{len(all_splits) - 1}")
        data_info[name] = {
            "rows": int(X.shape[0]),
            "features": int(X.shape[1]),
            "budget": asdict(budget_for(all_splits[0][0].size, quick, budget_steps)),
            "discrete_target": bool(np.all(y == np.round(y)) and np.unique(y).size <= 20),
        }
        loaded[name] = (X, y, all_splits)
    for i in split_ids:  # split-major order: a run stopped early still covers every set evenly
        for name, (X, y, all_splits) in loaded.items():
            tr, te = all_splits[i]
            for o in optimizers:
                jobs.append((name, X, y, tr, te, i, lineup[o], o, quick, budget_steps))
                weights.append(
                    sum(tr.size * model_budget(m, tr.size, quick, budget_steps).max_epochs for m in lineup[o])
                    * (2 if o == "adam" else 1)
                )
    header = {
        "meta": harness.run_metadata(seeds=f"split index (fit seed) for splits {split_ids}"),
        "quick": quick,
        "sets": data_info,
        "models": models,
        "lineup": lineup,
        "optimizers": optimizers,
        "splits_requested": split_ids,
        "workers": workers,
        "budget_steps": budget_steps,
        "t_start": time.time(),
    }
    journal = harness.Journal(out_dir, HEADER, PARTIAL)
    journal.start(header)
    entries: list[dict[str, Any]] = []

    def done(name: str, recs: list[dict[str, Any]], dt: float, dc: float) -> None:
        entry = {
            "set": name,
            "split": recs[0]["split"],
            "optimizer": recs[0]["optimizer"],
            "seconds": dt,
            "cpu_seconds": dc,
            "records": recs,
        }
        entries.append(entry)
        journal.append(entry)

    t0 = time.perf_counter()
    with harness.progress("UCI protocol", float(sum(weights)), enabled=progress) as tick:
        wmap = {(j[0], j[5], j[7]): w for j, w in zip(jobs, weights)}
        if workers <= 1:
            it = map(_job, jobs)
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            it = pool.imap_unordered(_job, jobs)
        try:
            for name, recs, dt, dc in it:
                done(name, recs, dt, dc)
                split, opt = recs[0]["split"], recs[0]["optimizer"]
                tick(f"{name} split {split} {opt}", wmap[(name, split, opt)])
        finally:
            if workers > 1:
                pool.close()
                pool.join()
    result = assemble(header, entries, time.perf_counter() - t0)
    write_report(result, out_dir)
    return result


def assemble(header: dict[str, Any], entries: Sequence[dict[str, Any]], wall: float) -> dict[str, Any]:
    """The results dict from the run header and the finished jobs (each: records and times)."""
    records = [r for e in entries for r in e["records"]]
    job_times = [{k: e[k] for k in ("set", "split", "optimizer", "seconds", "cpu_seconds")} for e in entries]
    return {
        **header,
        "splits": sorted({e["split"] for e in entries}),
        "wall_seconds": wall,
        "process_seconds": float(sum(j["seconds"] for j in job_times)),
        "cpu_seconds": float(sum(j["cpu_seconds"] for j in job_times)),
        "job_times": job_times,
        "levels": list(LEVELS),
        "records": records,
        "summary": summarize(records),
        "hidlr_minus_adam_ll": paired_difference(records, "ll"),
        "hidlr_minus_adam_rmse": paired_difference(records, "rmse"),
        "model_contrasts_ll": {f"{a}-{b}": model_contrast(records, a, b, "ll") for a, b in CONTRASTS},
        "calibration": summarize_calibration(records),
        "chosen_by_validation": chosen_by_validation(records),
    }


def wall_until_last_job(out_dir: Path, header: dict[str, Any]) -> float:
    """Seconds from the run's start to the last write of its ``partial.jsonl`` (its last finished job)."""
    return harness.Journal(out_dir, HEADER, PARTIAL).wall_until_last(header["t_start"])


def finish(out_dir: str | Path, stopped_early: bool = True, note: str = "") -> dict[str, Any]:
    """Write the report from the jobs a stopped run finished (``partial.jsonl`` in ``out_dir``).

    ``note``: a sentence for the report saying how the jobs in ``partial.jsonl`` came about (for
    example when the lines of two runs of the same code were put together).
    """
    from hidlr.bench.uci.report import write_report

    out_dir = Path(out_dir)
    journal = harness.Journal(out_dir, HEADER, PARTIAL)
    header, entries = journal.header(), journal.entries()
    if not entries:
        raise ValueError(f"no finished jobs in {out_dir / PARTIAL}")
    result = assemble(header, entries, wall_until_last_job(out_dir, header))
    result["stopped_early"] = stopped_early
    result["note"] = note
    write_report(result, out_dir)
    return result
