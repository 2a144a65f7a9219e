"""Hi-DLR on LoRA (the fine-tuning benchmark's ``hidlr-lora``) with another probe share: more
refreshes in the 100-step run, so the rates may travel farther from the start rate of 1e-4.
Prints each seed's test NLL, refresh count and last refreshed rates, then the median.

    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.2
    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.05 --unsmoothed-clip   # the prototype
    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.05 --lr0 1e-3   # another start rate
    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.05 --lr0 1e-2 --travel-direction   # round 6
    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.05 --mode full --seeds 0,1,2   # cross terms
    .venv/bin/python benchmarks/diagnosis/lora_share.py mdn 0.05 --grow-concave   # the restart's rule from step 0
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

import torch

from hidlr import groups
from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.finetune.runner import run_method
from hidlr.bench.finetune.train import Setup
from hidlr.optim import HiDLR


def main() -> None:
    head, share = sys.argv[1], float(sys.argv[2])
    lr0 = float(sys.argv[sys.argv.index("--lr0") + 1]) if "--lr0" in sys.argv else M.HIDLR_START
    mode = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "diag"
    seeds = [int(x) for x in sys.argv[sys.argv.index("--seeds") + 1].split(",")] if "--seeds" in sys.argv else [0, 1, 2]
    if "--travel-direction" in sys.argv:
        from common import patch_travel_direction

        patch_travel_direction()
    if "--unsmoothed-clip" in sys.argv:
        from common import patch_unsmoothed_clip

        patch_unsmoothed_clip()
    torch.set_num_threads(1)
    wl = real_workload(0, probe_size=48)

    def build(model, lr, steps):
        M.add_lora(model)
        opt = HiDLR(torch.optim.Adam(groups.lora(model, rest="head"), lr=lr), total_steps=steps, mode=mode)
        opt.rules = dataclasses.replace(opt.rules, probe_share=share)
        if "--grow-concave" in sys.argv:  # what restart_schedule turns on, here from the first step until arrival
            opt._growing = True
        return Setup(model, opt, lr=lr)

    label = mode + ("+growconcave" if "--grow-concave" in sys.argv else "")
    method = M.Method("hidlr-lora-share", f"Hi-DLR on LoRA, probe_share={share}, {label}", build, rate=lr0)
    nll = []
    for seed in seeds:
        res = run_method(wl, method, head, seed, lr0, 100, 32, None)
        nll.append(res["test"]["nll"])
        rates = {k: f"{v:.1e}" for k, v in res["rates"][-1]["rates"].items()}
        print(head, share, f"lr0={lr0:g}", label, seed, f"{nll[-1]:.4f}", res["refresh_steps"], rates, flush=True)
    print(head, share, f"lr0={lr0:g}", label, "median", f"{statistics.median(nll):.4f}")


if __name__ == "__main__":
    main()
