"""Hi-DLR by block on MiniLM / VADER, one head and seed, with the rate trace and each refresh's
decisions printed: why one MDN seed ends at the marginal's NLL (docs/benchmarks/finetune.md).

    .venv/bin/python benchmarks/diagnosis/layers_seed.py --head mdn --seed 0 \
        --out benchmarks/diagnosis/runs/layers-seed.jsonl   # [--probe-share 0.2]
"""

from __future__ import annotations

import argparse
import json

import torch

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.finetune.train import run_training

STEPS, BATCH, LR = 100, 32, 1e-4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--head", default="mdn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--probe-share", type=float, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    wl = real_workload(probe_size=48)  # as the benchmark
    model = M.new_model(wl, args.head, args.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        setup = M.hidlr_layers(model, args.lr, STEPS)
    opt = setup.optimizer
    if args.probe_share is not None:
        opt.rules = __import__("dataclasses").replace(opt.rules, probe_share=args.probe_share)
    curve = []
    loss_fn = model.loss

    def loss(*a, **k):
        out = loss_fn(*a, **k)
        if torch.is_grad_enabled():
            curve.append(float(out.detach()))
        return out

    model.loss = loss

    res = run_training(setup, wl, STEPS, BATCH, args.seed)
    for rec in opt.history:
        acc = [g for g in rec["groups"] if g["accepted"]]
        why = sorted({g["reason"] for g in rec["groups"] if not g["accepted"] and g["reason"]})
        est = [f"{g['estimate']:.2g}" for g in rec["groups"]]
        print(rec["step"], f"loss={rec['loss']:.4f}", f"joint={rec['joint_scale']}", f"acc={len(acc)}", est, why)
    print("curve", [round(sum(curve[i:i + 10]) / len(curve[i:i + 10]), 3) for i in range(0, len(curve), 10)])
    print("test", res.get("test", {}).get("nll"), "train_last", res["train_loss_last"], "diverged", res["diverged"])
    with open(args.out, "a") as f:
        f.write(json.dumps({"head": args.head, "seed": args.seed, "lr": args.lr, "history": opt.history,
                            "test": res.get("test"), "train_loss_last": res["train_loss_last"]}, default=str) + "\n")


if __name__ == "__main__":
    main()
