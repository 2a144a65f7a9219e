"""Rotated-digits benchmark: image regression of a rotation angle whose true conditional is known.

A stand-in for a CNN-backbone experiment on radiographs: scikit-learn's 8x8 digits are turned by
an angle from ``U(-150, 150)`` degrees and rendered on a 20x20 canvas
(:mod:`hidlr.uq.data.rotdigits`, which states the construction and its assumptions); the target is
the angle plus ``N(0, 10^2)`` noise. Half-turn-symmetric digits (0, 1, 8) make the true
conditional two-moded for most angles. Four models share one small CNN backbone
(:mod:`hidlr.bench.rotdigits.nets`): MDN, BNN head, deep ensemble and Bayesian-MDN head.

For each seed the training images are drawn anew (same source images, new angles and noise) and
every model is trained with early stopping on source images held out of training; all are scored on
one fixed test set (other source images) by the Monte Carlo KL from the truth per image, test NLL,
CRPS and 90% coverage, per digit class and per group (symmetric, asymmetric, two-mode). The
left-out nines, a class no model saw, show whether the epistemic spread grows off the training data.

Entry point: :func:`run` (``hidlr bench rotdigits``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hidlr.bench import harness
from hidlr.bench.rotdigits import nets, scores
from hidlr.bench.rotdigits.train import TrainOptions, fit
from hidlr.uq.data.rotdigits import RotatedDigits, RotatedDigitsTask

EVAL_SEED = 987_654
PARTIAL, HEADER = "partial.jsonl", "run_header.json"


@dataclass(frozen=True)
class Settings:
    """Sizes of one run: turned copies per source image (train, test), KL draws per test image,
    seeds, training options, and an optional cap on the rows of each split (for smoke tests)."""

    train_copies: int
    test_copies: int
    draws: int
    seeds: int
    train: TrainOptions
    limit: int | None = None


FULL = Settings(train_copies=4, test_copies=2, draws=64, seeds=3, train=TrainOptions(epochs=40, patience=6))
QUICK = Settings(train_copies=2, test_copies=1, draws=32, seeds=1, train=TrainOptions(epochs=15, patience=4))


def _limit(data: RotatedDigits, limit: int | None) -> RotatedDigits:
    return data if limit is None else data.subset(torch.arange(min(limit, len(data))))


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def epistemic_spread(test_dist: Any, unseen_dist: Any) -> dict[str, float | None]:
    """Mean epistemic sd (degrees) on the test digits and on the unseen class, and their ratio
    (None for a model without an epistemic part)."""
    if test_dist.members == 1:  # one net: nothing to disagree (the computed part is rounding noise)
        return {"epistemic_sd": 0.0, "epistemic_sd_unseen": 0.0, "epistemic_ratio": None}
    on_test = float(test_dist.epistemic_variance.sqrt().mean())
    on_unseen = float(unseen_dist.epistemic_variance.sqrt().mean())
    return {
        "epistemic_sd": on_test,
        "epistemic_sd_unseen": on_unseen,
        "epistemic_ratio": on_unseen / on_test if on_test > 0 else None,
    }


def oracle_scores(test: RotatedDigits, draws: int) -> dict[str, Any]:
    """The scores of the true conditional itself (KL 0 by construction): the floor of NLL and CRPS."""
    return scores.score(test.true_distribution(), test, draws, EVAL_SEED)


def run(
    out_dir: str | Path = "benchmarks/results/rotdigits",
    quick: bool = False,
    seeds: int | None = None,
    models: Sequence[str] | None = None,
    settings: Settings | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train and score every model for every seed; write results.json, report.md and the plots.

    ``settings``: explicit sizes (default :data:`FULL`, quick :data:`QUICK`); ``seeds``: overrides
    their seed count; ``models``: a subset of :data:`~hidlr.bench.rotdigits.nets.MODELS`;
    ``device``: torch device (default CUDA when available); ``command``: the command line recorded
    in the report.
    """
    from hidlr.bench.rotdigits.report import write_report

    torch.set_num_threads(1)
    chosen = list(models or nets.MODELS)
    for m in chosen:
        nets.members(m)  # clear error for an unknown name
    cfg = settings or (QUICK if quick else FULL)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be positive, got {seeds}")
        cfg = replace(cfg, seeds=int(seeds))
    dev = _device(device)
    task = RotatedDigitsTask()
    test = _limit(task.sample("test", cfg.test_copies, EVAL_SEED), cfg.limit)
    unseen = _limit(task.sample("excluded", cfg.test_copies, EVAL_SEED), cfg.limit)
    examples = scores.example_rows(test)
    header = {
        "meta": harness.run_metadata(seeds=list(range(cfg.seeds)), packages=("scikit-learn",)),
        "command": command,
        "quick": quick,
        "task": asdict(task),
        "settings": asdict(cfg),
        "models": chosen,
        "device": str(dev),
        "n_test": len(test),
        "n_unseen": len(unseen),
        "t_start": time.time(),
    }
    out = Path(out_dir)
    journal = harness.Journal(out, HEADER, PARTIAL)
    journal.start(header)
    weights = {m: nets.members(m) * (2 if m in nets.STOCHASTIC else 1) for m in chosen}
    jobs: list[dict[str, Any]] = []
    example_densities: dict[str, Any] = {}
    t0 = time.perf_counter()
    with harness.progress("rotated digits", float(cfg.seeds * sum(weights.values())), enabled=progress) as tick:
        for seed in range(cfg.seeds):
            train = _limit(task.sample("train", cfg.train_copies, seed), cfg.limit)
            for m in chosen:
                t1 = time.perf_counter()
                fitted = fit(m, train, seed, cfg.train, dev)
                fit_s = time.perf_counter() - t1
                dist = fitted.predict(test, dev)
                job = {
                    "model": m,
                    "seed": seed,
                    "n_train": len(train),
                    "fit_s": fit_s,
                    "epochs_run": fitted.epochs_run,
                    "best_epochs": fitted.best_epochs,
                    **epistemic_spread(dist, fitted.predict(unseen, dev)),
                    **scores.score(dist, test, cfg.draws, EVAL_SEED),
                }
                jobs.append(job)
                journal.append(job)
                if seed == 0 and examples:
                    example_densities[m] = scores.densities(dist, test, examples)
                tick(f"seed {seed} {m}", weights[m])
    result = {
        **header,
        "wall_seconds": time.perf_counter() - t0,
        "oracle": oracle_scores(test, cfg.draws),
        "jobs": jobs,
        "densities": example_densities,
    }
    write_report(result, out)
    return result
