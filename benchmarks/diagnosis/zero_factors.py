"""Which models of the benchmarks start with a weight matrix at zero (round 25 of
``docs/diagnosis.md``): the runs that begin in a growth phase (:func:`hidlr.optim.refresh.has_zero_factor`).
Prints, per model, the parameters that are weight matrices of zeros at construction.

    .venv/bin/python benchmarks/diagnosis/zero_factors.py
"""

from __future__ import annotations

import torch
from torch import nn

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.lr import workloads as W
from hidlr.uq.models import BNN, MDN, BayesianMDN, MCDropout


def zero_matrices(named: list[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the weight matrices (two or more dims) that are all zeros."""
    return [n for n, p in named if p.dim() >= 2 and p.numel() > 0 and not bool(p.any())]


def show(label: str, named: list[tuple[str, torch.Tensor]]) -> None:
    found = zero_matrices(named)
    print(f"{label}: {len(found)} of {sum(p.dim() >= 2 for _, p in named)} weight matrices at zero", found[:4])


def main() -> None:
    torch.set_num_threads(1)
    W._load()
    for name, workload in W.all_workloads().items():
        task = workload.build(0)
        show(f"lr/{name}", [(f"{g['name']}.{i}", p) for g in task.groups for i, p in enumerate(g["params"])])
    wl = real_workload(0, probe_size=48)
    for head in ("mdn", "gaussian"):
        model = M.new_model(wl, head, 0)
        show(f"finetune/{head}", list(model.named_parameters()))
        M.add_lora(model)
        show(f"finetune/{head}+lora", list(model.named_parameters()))
    y_std = torch.ones(1)
    for cls in (MDN, BNN, BayesianMDN, MCDropout):
        net: nn.Module = cls().build(8, y_std, 100)
        show(f"uq/{cls.__name__}", list(net.named_parameters()))


if __name__ == "__main__":
    main()
