"""Round 24: Hi-DLR over the full model's blocks (the fine-tuning benchmark's ``hidlr-layers``,
MDN head, seed 2) with the concave-descent growth on from the first step, as at c8f10f0; prints
the test NLL and each refresh's probe loss, layer3's rate before and after, and the reasons.

    .venv/bin/python benchmarks/diagnosis/trace_layers_growth.py
"""

from __future__ import annotations

import dataclasses

import torch

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.finetune.runner import run_method
from hidlr.bench.finetune.train import Setup


def main() -> None:
    torch.set_num_threads(1)
    wl = real_workload(0, probe_size=48)
    base = M.method_table(False)["hidlr-layers"]
    opts = []

    def build(model, lr, steps) -> Setup:
        setup = base.build(model, lr, steps)
        setup.optimizer._growing = True  # growth from the first step, as at c8f10f0
        opts.append(setup.optimizer)
        return setup

    res = run_method(wl, dataclasses.replace(base, build=build), "mdn", 2, base.rate, 100, 32, None)
    print("test NLL", res["test"]["nll"])
    for r in opts[-1].history:
        g = r["groups"]
        reasons = sorted({x["reason"] for x in g if x["reason"]})
        print(r["step"], round(r["loss"], 4), f"layer3 {g[3]['rate']:.1e} -> {g[3]['estimate']:.1e}", reasons)


if __name__ == "__main__":
    main()
