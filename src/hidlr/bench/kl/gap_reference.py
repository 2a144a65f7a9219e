"""The gap experiment against a NUTS reference posterior: which approximations grow their epistemic
variance in the gap, and how close each one's predictive is to the reference's.

For each seed: the gap task's training sample and regions (:func:`~hidlr.bench.kl.tasks.gap_regions`),
the NUTS posterior of a one-hidden-layer BNN on it (:mod:`hidlr.bench.kl.reference`), and the
approximations of the gap experiment fitted exactly as there (400 epochs of Adam, minibatch 16).
Per method: epistemic and total variance in the gap and near the data and their ratios; per
approximation and grid point, the distance to the reference from the first two moments:
``KL(N(m_ref, v_ref) || N(m, v))`` of the predictive (total variance) and the 2-Wasserstein distance
between the Gaussians of the function value ``N(m, v_epistemic)``, averaged over each region.

Entry point: :func:`run`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hidlr.bench import harness
from hidlr.bench import reporting as rep
from hidlr.bench.kl.reference import NUTSSettings
from hidlr.bench.kl.tasks import GAP_N, GAP_TASK, build, gap_regions, make_task, train_sample

APPROXIMATIONS = ("bnn", "bnn_homoscedastic", "laplace", "deep_ensemble")
REFERENCE = "nuts"
FIT_EPOCHS = 400  # as the KL study's gap experiment (GAP_EPOCHS)
JSON_NAME, MD_NAME, PNG_NAME = "gap_reference.json", "gap_reference.md", "gap_reference.png"
_FIT_UNITS = 100  # progress-bar weight of one model fit, against one NUTS iteration


def gaussian_kl(m0: np.ndarray, v0: np.ndarray, m1: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """``KL(N(m0, v0) || N(m1, v1))`` elementwise (variances, all ``> 0``)."""
    return 0.5 * (np.log(v1 / v0) + (v0 + (m0 - m1) ** 2) / v1 - 1.0)


def gaussian_w2(m0: np.ndarray, v0: np.ndarray, m1: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """2-Wasserstein distance between ``N(m0, v0)`` and ``N(m1, v1)`` elementwise (variances ``>= 0``)."""
    return np.sqrt((m0 - m1) ** 2 + (np.sqrt(v0) - np.sqrt(v1)) ** 2)


def moments(dist: Any) -> dict[str, np.ndarray]:
    """Mean, epistemic and total variance ``(n,)`` of a predictive :class:`GaussianMixture`, float64."""

    def arr(t: Any) -> np.ndarray:
        return t.detach().double().cpu().numpy()

    return {"mean": arr(dist.mean), "epi": arr(dist.epistemic_variance), "var": arr(dist.variance)}


def region_stats(mo: dict[str, np.ndarray], in_gap: np.ndarray, near: np.ndarray) -> dict[str, float]:
    """Mean epistemic / total variance in the gap and near the data, and the ratios gap / near."""
    out = {
        "epi_gap": float(mo["epi"][in_gap].mean()),
        "epi_near": float(mo["epi"][near].mean()),
        "var_gap": float(mo["var"][in_gap].mean()),
        "var_near": float(mo["var"][near].mean()),
    }
    out["epi_ratio"] = out["epi_gap"] / out["epi_near"] if out["epi_near"] > 0 else None
    out["var_ratio"] = out["var_gap"] / out["var_near"]
    return out


def distance_to_reference(
    ref: dict[str, np.ndarray], mo: dict[str, np.ndarray], in_gap: np.ndarray, near: np.ndarray
) -> dict[str, float]:
    """Region means of the predictive KL from the reference (nats) and of the function-value W2."""
    kl = gaussian_kl(ref["mean"], ref["var"], mo["mean"], mo["var"])
    w2 = gaussian_w2(ref["mean"], ref["epi"], mo["mean"], mo["epi"])
    return {
        "kl_gap": float(kl[in_gap].mean()),
        "kl_near": float(kl[near].mean()),
        "w2_f_gap": float(w2[in_gap].mean()),
        "w2_f_near": float(w2[near].mean()),
    }


def train_rmse(dist: Any, y: np.ndarray) -> float:
    """Root mean squared error of the predictive mean ``(n,)`` against the training targets ``y: (n,)``:
    how closely the fit follows the data (to compare with the task's noise sd)."""
    return float(np.sqrt(np.mean((moments(dist)["mean"] - np.asarray(y, dtype=np.float64)) ** 2)))


def _curve(grid: np.ndarray, mo: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {"x": grid.tolist(), "mean": mo["mean"].tolist(), "epistemic_sd": np.sqrt(mo["epi"]).tolist()}


def seed_run(
    seed: int,
    models: Sequence[str],
    settings: NUTSSettings,
    epochs: int = FIT_EPOCHS,
    tick: Any = None,
    keep_curves: bool = False,
) -> dict[str, Any]:
    """The reference and every approximation on seed ``seed``'s training sample (one job)."""
    import torch

    from hidlr.bench.kl.reference import nuts_posterior

    task = make_task(GAP_TASK)
    X, y = train_sample(task, GAP_N, seed)
    grid, in_gap, near = gap_regions(X)
    g = torch.as_tensor(grid, dtype=torch.float64).reshape(-1, 1)
    t0 = time.perf_counter()
    post = nuts_posterior(X, y, settings, seed=seed, tick=tick)
    nuts_s = time.perf_counter() - t0
    ref = moments(post.predictive(g))
    x_train = torch.as_tensor(X, dtype=torch.float64)
    f = post.function_draws(g).numpy()  # (chains, samples, grid)
    per_chain = f.var(axis=1)
    chain_ratios = (per_chain[:, in_gap].mean(1) / per_chain[:, near].mean(1)).tolist()
    out: dict[str, Any] = {
        "seed": seed,
        REFERENCE: {
            **region_stats(ref, in_gap, near),
            "train_rmse": train_rmse(post.predictive(x_train), y),
            "seconds": nuts_s,
            "chain_epi_ratios": chain_ratios,
            "noise_sd_mean": float(post.noise_draws().mean()),
            "diagnostics": {
                "all": post.diagnostics(g),
                "gap": post.diagnostics(g[torch.as_tensor(in_gap)]),
                "near": post.diagnostics(g[torch.as_tensor(near)]),
            },
        },
    }
    curves = {REFERENCE: _curve(grid, ref)} if keep_curves else None
    for m in models:
        t1 = time.perf_counter()
        est = build(m, 16)
        est.fit(X, y, epochs=epochs, batch_size=16, seed=seed, optimizer="adam")
        mo = moments(est.predict_proba(grid.reshape(-1, 1)))
        out[m] = {
            **region_stats(mo, in_gap, near),
            **distance_to_reference(ref, mo, in_gap, near),
            "train_rmse": train_rmse(est.predict_proba(X), y),
            "seconds": time.perf_counter() - t1,
        }
        if curves is not None:
            curves[m] = _curve(grid, mo)
        if tick is not None:
            tick(f"seed {seed}: {m}", _FIT_UNITS)
    if curves is not None:
        out["curves"] = {**curves, "train_x": X.reshape(-1).tolist(), "train_y": y.tolist()}
    return out


def summarize(runs: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """method -> statistic -> mean ± s.e. over seeds (statistics that are None on a seed are skipped)."""
    keys = ("epi_gap", "epi_near", "epi_ratio", "var_ratio", "kl_gap", "kl_near", "w2_f_gap", "w2_f_near", "train_rmse")
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        out[m] = {}
        for k in keys:
            vals = [r[m][k] for r in runs if r[m].get(k) is not None]
            out[m][k] = rep.mean_se(vals) if vals else None
        # the share of seeds on which the ratio gap / near exceeds 1
        ratios = [r[m]["epi_ratio"] for r in runs if r[m].get("epi_ratio") is not None]
        out[m]["seeds_ratio_above_1"] = f"{sum(x > 1 for x in ratios)}/{len(ratios)}"
    return out


def run(
    out_dir: str | Path = "benchmarks/results/kl",
    seeds: int | Sequence[int] = 4,
    models: Sequence[str] | None = None,
    settings: NUTSSettings | None = None,
    epochs: int = FIT_EPOCHS,
    progress: bool = True,
    command: str = "",
    note: str = "",
) -> dict[str, Any]:
    """Run the comparison in this process (one thread) and write ``gap_reference.{json,md,png}``.

    seeds: a count (seeds 0..k-1) or explicit seeds; models: approximations from
    :data:`APPROXIMATIONS`; settings: the NUTS reference's model and sampler; epochs: training
    epochs of each approximation; command: the command line to record in the report; note: a
    sentence for the report (e.g. on an earlier run with other settings).
    """
    import torch

    from hidlr.bench.kl.reference_report import write_outputs

    models = list(models or APPROXIMATIONS)
    for m in models:
        if m not in APPROXIMATIONS:
            raise ValueError(f"models: unknown approximation {m!r}; choose from {APPROXIMATIONS}")
    seed_ids = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_ids or any(s < 0 for s in seed_ids):
        raise ValueError(f"seeds must be a positive count or non-negative seeds, got {seeds!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    settings = settings or NUTSSettings()
    torch.set_num_threads(1)
    meta = harness.run_metadata(seeds=seed_ids, packages=("pyro-ppl",))
    per_seed = settings.chains * (settings.warmup + settings.samples) + _FIT_UNITS * len(models)
    t0 = time.perf_counter()
    runs = []
    with harness.progress("gap vs NUTS", float(per_seed * len(seed_ids)), enabled=progress) as tick:
        for i, s in enumerate(seed_ids):
            runs.append(seed_run(s, models, settings, epochs, tick=tick, keep_curves=i == 0))
    result = {
        "what": "gap task: NUTS reference posterior of a one-hidden-layer BNN against approximations",
        "command": command,
        "note": note,
        "meta": meta,
        "settings": {**settings.__dict__},
        "epochs": epochs,
        "models": models,
        "seeds": seed_ids,
        "n_train": GAP_N,
        "task_noise_sd": float(make_task(GAP_TASK).noise),
        "wall_s": time.perf_counter() - t0,
        "summary": summarize(runs, [REFERENCE, *models]),
        "runs": runs,
    }
    write_outputs(result, Path(out_dir))
    return result
