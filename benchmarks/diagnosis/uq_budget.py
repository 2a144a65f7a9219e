"""Round 3: the uncertainty estimators' Hi-DLR training told its step budget (epochs x batches)
against not told, on their default fits (``hidlr.bench.uci.defaults.fit_one``, variant early-stop;
the models that train with Hi-DLR by default; sets diabetes, yacht, energy, concrete; splits 0-4).

A prototype (``train_epochs`` patched inside this script), not in the library:

    .venv/bin/python benchmarks/diagnosis/uq_budget.py none
    .venv/bin/python benchmarks/diagnosis/uq_budget.py budget

Appends to ``benchmarks/diagnosis/results/uq_{none,budget}.jsonl``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

import hidlr.uq.models.estimator as estimator_mod
import hidlr.uq.models.stacked as stacked_mod
from hidlr import HiDLR
from hidlr.bench.uci import defaults
from hidlr.uq.models import training

SETS = ("diabetes", "yacht", "energy", "concrete")
MODELS = ("bnn", "mc_dropout", "bayesian_mdn")


def main() -> None:
    mode = sys.argv[1]
    if mode not in ("none", "budget"):
        raise SystemExit("usage: uq_budget.py none|budget")
    torch.set_num_threads(1)
    train = training.train_epochs

    def told(net, opt, plan, seeds, *args, **kwargs):
        if mode == "budget" and isinstance(opt, HiDLR) and opt.total_steps is None:
            opt.total_steps = plan.epochs * math.ceil(plan.n / plan.batch_size)
        return train(net, opt, plan, seeds, *args, **kwargs)

    for mod in (training, estimator_mod, stacked_mod):
        mod.train_epochs = told
    out = Path(f"benchmarks/diagnosis/results/uq_{mode}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for name in SETS:
            X, y, splits = defaults.load(name, range(5))
            for s, (tr, te) in enumerate(splits):
                for model in MODELS:
                    rec = defaults.fit_one(model, "early-stop", X, y, tr, te, s)
                    rec.update(set=name, model=model, split=s, mode=mode)
                    f.write(json.dumps({k: v for k, v in rec.items() if isinstance(v, (int, float, str))}) + "\n")
                    f.flush()
                    print(name, model, s, rec.get("ll"), rec.get("cov90"), file=sys.stderr)


if __name__ == "__main__":
    main()
