"""Hi-DLR on LoRA on MiniLM / VADER (the fine-tuning benchmark's ``hidlr-lora`` at another start
rate), every refresh's decisions printed: how a run started at 1e-2 ends at the marginal's NLL
(round 6 of ``docs/diagnosis.md``).

    .venv/bin/python benchmarks/diagnosis/lora_history.py mdn 1 1e-2 [--travel-direction]
"""

from __future__ import annotations

import sys

import torch
from common import patch_travel_direction

from hidlr import groups
from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.finetune.runner import run_method
from hidlr.bench.finetune.train import Setup
from hidlr.optim import HiDLR


def main() -> None:
    head, seed, lr0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if "--travel-direction" in sys.argv:
        patch_travel_direction()
    torch.set_num_threads(1)
    wl = real_workload(0, probe_size=48)
    holder = {}

    def build(model, lr, steps):
        M.add_lora(model)
        opt = HiDLR(torch.optim.Adam(groups.lora(model, rest="head"), lr=lr), total_steps=steps)
        holder["opt"] = opt
        return Setup(model, opt, lr=lr)

    method = M.Method("hidlr-lora", f"Hi-DLR on LoRA from {lr0:g}", build, rate=lr0)
    res = run_method(wl, method, head, seed, lr0, 100, 32, None)
    for rec in holder["opt"].history:
        print(rec["step"], f"loss={rec['loss']:.4f} forwards={rec['forwards']} joint={rec['joint_scale']}")
        for g in rec["groups"]:
            print(
                f"    {g['name']:8s} rate={g['rate']:.2e} est={g['estimate']:.2e} newton={g['newton_rate']} "
                f"a={g['a']} b={g['b']} r2={g['r2']} {g['reason'] or ''}"
            )
    print("test", res["test"]["nll"])


if __name__ == "__main__":
    main()
