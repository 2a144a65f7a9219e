"""KL-convergence study on synthetic tasks with known conditional densities, and the gap experiment.

For each task, training-set size n and seed, every model is fitted and scored by the Monte Carlo
KL divergence from the true conditional density to its prediction,
``E_x E_{y ~ p0(.|x)} [log p0(y|x) - log p(y|x)]``, on a fixed evaluation sample drawn from the task
(the same for every model, size and seed). The slope of log KL against log n is fitted per seed and
pooled (with a bootstrap over seeds). The number of epochs for each (task, n, model) is chosen on
the validation curve of seed 0 (80/20 split of its training sample) and then used for every seed.

The limited-data experiment trains each model on a small sample with a gap between two input
clusters and compares the epistemic variance inside the gap with that near the data.

Entry point: :func:`run`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hidlr.bench import harness
from hidlr.bench import reporting as rep
from hidlr.bench.kl.tasks import (
    GAP_N,
    GAP_TASK,
    TASKS,
    build,
    coverage_levels,
    density_grid,
    eval_sample,
    gap_regions,
    make_task,
    train_sample,
)

KL_MODELS = ("mdn", "bnn")
GAP_MODELS = ("mdn", "bnn", "mc_dropout", "deep_ensemble", "mdn_ensemble", "bayesian_mdn", "laplace")
SIZES = (250, 500, 1000, 2000, 4000)
QUICK_SIZES = (100, 200)
EVAL_N = 4000
STEPS = 800  # optimizer steps at the largest epoch count tried, whatever n


def batch_for(n: int) -> int:
    """Minibatch size growing with n (32 .. 256), so every n gets about the same number of steps."""
    return int(max(32, min(256, n // 16)))


FAILURES = (FloatingPointError, RuntimeError, ValueError)
PARTIAL, HEADER = "partial.jsonl", "run_header.json"
GAP_EPOCHS, GAP_EPOCHS_QUICK = 400, 10  # 40 points in batches of 16: 3 steps per epoch


def _epochs_cap(n: int, quick: bool) -> int:
    """Most epochs tried on the validation curve: about STEPS optimizer steps (quick: 8 epochs)."""
    if quick:
        return 8
    per_epoch = math.ceil(0.8 * n / batch_for(n))
    return int(min(600, max(30, round(STEPS / per_epoch))))


def _score(dist: Any, task: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    import torch

    from hidlr.uq import metrics

    yt = torch.as_tensor(y, dtype=dist.loc.dtype)
    lp_true = torch.as_tensor(np.asarray(task.log_prob(x, y), dtype=np.float64), dtype=dist.loc.dtype)
    est = metrics.kl_to_truth_estimate(dist, yt, lp_true)
    out = {"kl": est.value, "kl_mc_se": est.stderr, "nll": float(metrics.nll(dist, yt))}
    for lv in coverage_levels():
        out[f"cov{int(round(lv * 100))}"] = float(metrics.coverage(dist, yt, lv))
    return out


def fit_size(
    task_name: str, n: int, model: str, seeds: Sequence[int], quick: bool, keep_density: bool, optimizer: str = "adam"
) -> dict[str, Any]:
    """Tune epochs on seed 0's validation part, then fit and score every seed. One job."""
    import torch

    torch.set_num_threads(1)
    task = make_task(task_name)
    xe, ye = eval_sample(task, EVAL_N if not quick else 500)
    X0, y0 = train_sample(task, n, seeds[0])
    cut = int(round(0.8 * n))
    cap = _epochs_cap(n, quick)
    batch = batch_for(n)
    t0, c0 = time.perf_counter(), time.process_time()
    tune_error = None
    try:
        est = build(model, batch)
        est.fit(
            X0[:cut],
            y0[:cut],
            epochs=cap,
            batch_size=batch,
            seed=seeds[0],
            optimizer=optimizer,
            validation_data=(X0[cut:], y0[cut:]),
        )
        curve = [h["val_nll"] for h in est.history_]
    except FAILURES as err:  # keep going with the cap; the error is reported
        curve, tune_error = [], f"{type(err).__name__}: {err}"
    finite = [(v, i) for i, v in enumerate(curve) if math.isfinite(v)]
    epochs = (min(finite)[1] + 1) if finite else cap
    tune_s = time.perf_counter() - t0
    per_seed, density = [], None
    for s in seeds:
        X, y = train_sample(task, n, s)
        t1 = time.perf_counter()
        try:
            est = build(model, batch)
            est.fit(X, y, epochs=epochs, batch_size=batch, seed=s, optimizer=optimizer)
            scores = _score(est.predict_proba(xe), task, xe, ye)
            if not math.isfinite(scores["kl"]):
                raise FloatingPointError("non-finite KL")
        except FAILURES as err:
            per_seed.append(
                {"seed": s, "fit_s": time.perf_counter() - t1, "kl": None, "error": f"{type(err).__name__}: {err}"}
            )
            continue
        per_seed.append({"seed": s, "fit_s": time.perf_counter() - t1, **scores})
        if keep_density and density is None:
            density = density_grid(task, est)
    return {
        "task": task_name,
        "n": n,
        "model": model,
        "epochs": epochs,
        "epochs_cap": cap,
        "tune_s": tune_s,
        "tune_error": tune_error,
        "seeds": per_seed,
        "density": density,
        "cpu_s": time.process_time() - c0,
    }


def gap_experiment(
    model: str, seeds: Sequence[int], quick: bool, optimizer: str = "adam", epochs: int | None = None
) -> dict[str, Any]:
    """Epistemic (and total) predictive variance inside the gap vs near the data, per seed.

    ``epochs``: training length (default :data:`GAP_EPOCHS`, quick :data:`GAP_EPOCHS_QUICK`).
    """
    import torch

    torch.set_num_threads(1)
    c0 = time.process_time()
    task = make_task(GAP_TASK)
    out = []
    curves = None
    for s in seeds:
        X, y = train_sample(task, GAP_N, s)
        grid, in_gap, near = gap_regions(X)
        try:
            est = build(model, 16)
            if epochs is None:
                epochs = GAP_EPOCHS_QUICK if quick else GAP_EPOCHS
            est.fit(X, y, epochs=epochs, batch_size=16, seed=s, optimizer=optimizer)
            d = est.predict_proba(grid.reshape(-1, 1))
        except FAILURES as err:
            out.append({"seed": s, "error": f"{type(err).__name__}: {err}"})
            continue
        epi = d.epistemic_variance.detach().double().cpu().numpy()
        tot = d.variance.detach().double().cpu().numpy()
        rec = {
            "seed": s,
            "epi_gap": float(epi[in_gap].mean()),
            "epi_near": float(epi[near].mean()),
            "var_gap": float(tot[in_gap].mean()),
            "var_near": float(tot[near].mean()),
        }
        has_epi = getattr(d, "members", 1) > 1  # a single net has no epistemic part
        rec["epi_ratio"] = rec["epi_gap"] / rec["epi_near"] if has_epi and rec["epi_near"] > 0 else None
        rec["var_ratio"] = rec["var_gap"] / rec["var_near"]
        out.append(rec)
        if curves is None:
            curves = {
                "x": grid.tolist(),
                "mean": d.mean.detach().double().cpu().numpy().tolist(),
                "epistemic_sd": np.sqrt(epi).tolist(),
                "total_sd": np.sqrt(tot).tolist(),
                "train_x": np.asarray(X).reshape(-1).tolist(),
                "train_y": np.asarray(y).reshape(-1).tolist(),
            }
    return {"model": model, "seeds": out, "curves": curves, "cpu_s": time.process_time() - c0}


def gap_check(
    out_path: str | Path,
    models: Sequence[str] = ("bnn", "bayesian_mdn"),
    epochs: int = 2000,
    seeds: int = 5,
    optimizer: str = "adam",
    workers: int = 2,
) -> dict[str, Any]:
    """The gap experiment alone, with longer training: does the epistemic ratio gap / near change?

    Writes ``{"what", "epochs", "runs": [gap_experiment(...) per model], "summary": model -> ratio
    mean ± s.e.}`` to ``out_path`` (JSON) and returns it.
    """
    for m in models:
        if m not in GAP_MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {GAP_MODELS}")
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    meta = harness.run_metadata(seeds=list(range(seeds)))
    args = [(m, list(range(seeds)), False, optimizer, epochs) for m in models]
    t0 = time.perf_counter()
    if workers <= 1:
        runs = [_gap_job(a) for a in args]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(args))) as pool:
            runs = pool.map(_gap_job, args)
    summary = {}
    for r in runs:
        ratios = [x["epi_ratio"] for x in r["seeds"] if x.get("epi_ratio") is not None]
        summary[r["model"]] = rep.mean_se(ratios) if ratios else None
    out = {
        "what": f"gap experiment with {epochs} epochs instead of {GAP_EPOCHS} ({optimizer}, seeds 0-{seeds - 1}), "
        "same runner function kl.gap_experiment",
        "epochs": epochs,
        "meta": meta,
        "wall_s": time.perf_counter() - t0,
        "summary": summary,
        "runs": runs,
    }
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    harness.write_json(path, out)
    return out


def _kl_job(args: tuple) -> dict[str, Any]:
    return fit_size(*args)


def _gap_job(args: tuple) -> dict[str, Any]:
    return gap_experiment(*args)


def _dispatch(item: tuple[str, tuple]) -> tuple[str, dict[str, Any]]:
    kind, args = item
    return kind, (_kl_job(args) if kind == "kl" else _gap_job(args))


def slopes(jobs: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """task -> model -> slope summary of log KL against log n (per seed, pooled, bootstrap)."""
    by: dict[tuple[str, str], dict[int, dict[int, float]]] = {}
    for j in jobs:
        for r in j["seeds"]:
            if r.get("kl") is None:
                continue
            by.setdefault((j["task"], j["model"]), {}).setdefault(r["seed"], {})[j["n"]] = r["kl"]
    out: dict[str, Any] = {}
    for (t, m), per in sorted(by.items()):
        seeds = sorted(per)
        mat = [[per[s][n] for n in sizes] for s in seeds if all(n in per[s] for n in sizes)]
        if len(mat) and len(sizes) >= 2:
            out.setdefault(t, {})[m] = rep.slope_summary(sizes, mat)
    return out


def run(
    out_dir: str | Path = "benchmarks/results/kl",
    quick: bool = False,
    tasks: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    seeds: int | Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    progress: bool = True,
    workers: int = 2,
    gap: bool = True,
    optimizer: str = "adam",
    gap_models: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the KL study (and the gap experiment) and write results.json, report.md and PNGs.

    tasks: synthetic task names (default all of :data:`TASKS`); sizes: training-set sizes
    (default :data:`SIZES`; quick :data:`QUICK_SIZES`); seeds: a count or explicit seeds (default 5,
    quick 2); models: subset of :data:`GAP_MODELS` (default :data:`KL_MODELS` for the KL study, all
    for the gap experiment); workers: processes side by side (1 = in this process); gap: run the
    limited-data experiment too; optimizer: "adam" (lr 3e-3, the default: the study compares model
    classes, not optimizers) or "hidlr";
    gap_models: the gap experiment's models when they should differ from ``models``.
    """
    from hidlr.bench.kl.report import write_report

    tasks = list(tasks or TASKS)
    sizes = sorted(int(n) for n in (sizes or (QUICK_SIZES if quick else SIZES)))
    if seeds is None:
        seeds = 2 if quick else 5
    seed_ids = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    kl_models = list(models or KL_MODELS)
    gap_models = list(gap_models or models or GAP_MODELS)
    for m in set(kl_models) | set(gap_models):
        if m not in GAP_MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {GAP_MODELS}")
    for t in tasks:
        make_task(t)  # fails early with a clear error for an unknown task
    if any(n < 10 for n in sizes):
        raise ValueError(f"sizes must be >= 10, got {sizes}")
    items: list[tuple[str, tuple]] = []
    weights: list[float] = []
    for t in tasks:
        for n in sizes:
            for m in kl_models:
                items.append(("kl", (t, n, m, seed_ids, quick, n == sizes[-1], optimizer)))
                cost = _epochs_cap(n, quick) * math.ceil(n / batch_for(n)) * (len(seed_ids) + 1)
                weights.append(cost * (5 if "ensemble" in m else 1))
    if gap:
        for m in gap_models:
            items.append(("gap", (m, seed_ids, quick, optimizer)))
            epochs = GAP_EPOCHS_QUICK if quick else GAP_EPOCHS
            weights.append(epochs * 3 * len(seed_ids) * (5 if "ensemble" in m else 1))
    header = {
        "meta": harness.run_metadata(seeds=seed_ids),
        "quick": quick,
        "optimizer": optimizer,
        "tasks": tasks,
        "sizes": sizes,
        "seeds": seed_ids,
        "models": kl_models,
        "gap_models": gap_models if gap else [],
        "eval_n": EVAL_N if not quick else 500,
        "workers": workers,
        "t_start": time.time(),
    }
    out = Path(out_dir)
    journal = harness.Journal(out, HEADER, PARTIAL)
    journal.start(header)
    kl_jobs, gap_jobs = [], []
    t0 = time.perf_counter()
    with harness.progress("KL study", float(sum(weights)), enabled=progress) as tick:
        order = sorted(range(len(items)), key=lambda i: -weights[i])  # longest first: better packing
        if workers <= 1:
            it = (_dispatch(items[i]) for i in order)
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            it = pool.imap(_dispatch, [items[i] for i in order])
        try:
            for i, (kind, res) in zip(order, it):
                (kl_jobs if kind == "kl" else gap_jobs).append(res)
                journal.append({"kind": kind, "result": res})
                tick(f"{res.get('task', 'gap')} n={res.get('n', '')} {res['model']}", weights[i])
        finally:
            if workers > 1:
                pool.close()
                pool.join()
    result = assemble(header, kl_jobs, gap_jobs, time.perf_counter() - t0)
    write_report(result, out)
    return result


def assemble(
    header: dict[str, Any], kl_jobs: list[dict[str, Any]], gap_jobs: list[dict[str, Any]], wall: float
) -> dict[str, Any]:
    """The results dict from the run header and the finished jobs."""
    return {
        **header,
        "wall_seconds": wall,
        "cpu_seconds": float(sum(j["cpu_s"] for j in kl_jobs + gap_jobs)),
        "jobs": kl_jobs,
        "gap": gap_jobs,
        "slopes": slopes(kl_jobs, header["sizes"]),
    }


def wall_until_last_job(out_dir: Path, header: dict[str, Any]) -> float:
    """Seconds from the run's start to the last write of its ``partial.jsonl`` (its last finished job)."""
    return harness.Journal(out_dir, HEADER, PARTIAL).wall_until_last(header["t_start"])


def finish(out_dir: str | Path, stopped_early: bool = True, note: str = "") -> dict[str, Any]:
    """Write the report from the jobs a stopped run finished (``partial.jsonl`` in ``out_dir``).

    ``note``: a sentence for the report saying how the jobs in ``partial.jsonl`` came about (for
    example when the lines of two runs of the same code were put together).
    """
    from hidlr.bench.kl.report import write_report

    out = Path(out_dir)
    journal = harness.Journal(out, HEADER, PARTIAL)
    header, done = journal.header(), journal.entries()
    kl_jobs = [d["result"] for d in done if d["kind"] == "kl"]
    gap_jobs = [d["result"] for d in done if d["kind"] == "gap"]
    result = assemble(header, kl_jobs, gap_jobs, wall_until_last_job(out, header))
    result["stopped_early"] = stopped_early
    result["note"] = note
    write_report(result, out)
    return result
