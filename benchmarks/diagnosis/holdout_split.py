"""Round 15 of the rate diagnosis: a probe on a held-out split of the training data (not an oracle).

Finding 6 and round 3 bounded what a held-out probe could do with an ORACLE that probes the
validation loss itself. Here the probe set is taken from the training data, as a user would:
``--frac`` of each workload's training rows (a fixed permutation) are held out, the training
stream draws from the rest, and the probe evaluates the loss on all held-out rows. Two variants,
both at the engine's defaults (``round4.py``'s ``hidlr+anneal=0.2``: told the step budget):

- ``...+holdout``: trains on the kept rows, probes the held-out rows;
- ``...+less``: trains on the kept rows, probes one more training batch as the default does (what
  the held-out rows cost as training data, without their use as a probe).

Compare each with the default re-run on the full training set (round 13's ``round13-base-*``) by
``paired.py``. Workloads: those whose training data is a finite set of rows drawn by the
benchmark's ``sampler`` or ``shifted_sampler`` (pretraining inside a workload is left unsplit);
the streams (char-gpt, seq-transformer, the noisy quadratics) have no rows to hold out.

    .venv/bin/python benchmarks/diagnosis/holdout_split.py --variants holdout less --seeds 0 1 2 \
        --out benchmarks/diagnosis/results/round15-holdout.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from common import run_logged
from round4 import variant

from hidlr.bench.lr import runner, wl_digits, wl_finetune, wl_regression, wl_synthetic, wl_vision
from hidlr.probes import probe_context

WORKLOADS = [
    "digits-mlp-bias",
    "digits-cnn-bn",
    "digits-mlp-head-sgd",
    "digits-lora",
    "mdn",
    "bnn",
    "multitask-heads",
    "nam",
    "digits-resnet-bn",
    "digits-finetune",
    "digits-mlp-bias-long",
]
SPLIT: dict[str, Any] = {"frac": 0.0, "off": False, "rows": None, "probe": "separate"}
SPLIT_SEED = 12345


def split_sampler(original: Callable[..., Callable]) -> Callable[..., Callable]:
    """``original`` (a batch drawer factory) over the kept rows; the held-out rows go to ``SPLIT``."""

    @functools.wraps(original)
    def sampler(*tensors: torch.Tensor, batch_size: int, **kwargs: Any) -> Callable:
        if SPLIT["off"] or SPLIT["frac"] == 0.0:
            return original(*tensors, batch_size=batch_size, **kwargs)
        n = tensors[0].shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
        k = max(1, round(SPLIT["frac"] * n))
        held, kept = perm[:k], perm[k:]
        SPLIT["rows"] = tuple(t[held] for t in tensors)
        return original(*(t[kept] for t in tensors), batch_size=batch_size, **kwargs)

    return sampler


def unsplit(original: Callable) -> Callable:
    """``original`` (a workload's pretraining) with the split off while it runs."""

    @functools.wraps(original)
    def run(*args: Any) -> Any:
        SPLIT["off"] = True
        try:
            return original(*args)
        finally:
            SPLIT["off"] = False

    return run


def patch() -> None:
    for module in (wl_digits, wl_finetune, wl_regression, wl_synthetic):
        module.sampler = split_sampler(module.sampler)
    wl_vision.shifted_sampler = split_sampler(wl_vision.shifted_sampler)
    wl_digits._pretrained = unsplit(wl_digits._pretrained)
    wl_finetune.pretrained = unsplit(wl_finetune.pretrained)
    original = runner.make_probe

    def make_probe(task, batch, mode, probe_gen, crn_seed):
        if SPLIT["probe"] != "holdout" or mode != "separate":
            return original(task, batch, mode, probe_gen, crn_seed)
        rows = SPLIT["rows"]

        def probe() -> torch.Tensor:
            with probe_context(task.model, eval_mode=False, seed=crn_seed if task.stochastic else None):
                return task.loss(task.model, rows)

        return probe

    runner.make_probe = make_probe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", choices=["holdout", "less"], required=True)
    ap.add_argument("--frac", type=float, default=0.2)
    ap.add_argument("--workloads", nargs="+", default=WORKLOADS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    patch()
    SPLIT["frac"] = a.frac
    for w in a.workloads:
        for v in a.variants:
            SPLIT["probe"] = "holdout" if v == "holdout" else "separate"
            name = f"hidlr+anneal=0.2+{v}" + ("" if a.frac == 0.2 else f"={a.frac:g}")
            method = dataclasses.replace(variant("hidlr+anneal=0.2", None), name=name)
            for s in a.seeds:
                run_logged(a.out, w, method, s, {"lr0": "default"})


if __name__ == "__main__":
    main()
