"""Why HiDLR's defaults carry safeguards: Adam + one group per layer on an MLP over digits.

Compares the papers' plain diagonal rule, full mode, and HiDLR's defaults (joint line + momentum
horizon), each from starting rates 1e-4, 1e-3 and 1e-2, against Adam at those rates. Prints final
validation losses (lower is better) and each run's largest rate.

    python examples/stability.py [--steps 600] [--seeds 1]
"""

import argparse

import torch
from torch import nn

from hidlr import HiDLR, groups
from hidlr.demo import load_digits_split, make_mlp

CONFIGS = {
    "Adam": None,
    "plain diag (ema .9, clip, every 4)": dict(every=4, ema=0.9, joint=False, horizon=0.0),
    "plain full (ema .9, clip, every 4)": dict(every=4, ema=0.9, mode="full", joint=False, horizon=0.0),
    "diag + joint only": dict(joint=True, horizon=0.0),
    "diag + horizon only": dict(joint=False, horizon=0.5),
    "HiDLR defaults": {},
}


def train(cfg, lr: float, steps: int, seed: int) -> tuple[float, float]:
    x, y, xv, yv = load_digits_split(seed)
    model = make_mlp(seed)
    loss_fn = nn.CrossEntropyLoss()
    base = torch.optim.Adam(groups.by_layer(model), lr=lr)
    opt = base if cfg is None else HiDLR(base, **cfg)
    gen = torch.Generator().manual_seed(seed)
    top = lr
    for _ in range(steps):
        i, j = torch.randint(len(x), (2, 64), generator=gen)
        opt.zero_grad()
        loss = loss_fn(model(x[i]), y[i])
        if not torch.isfinite(loss):
            return float("nan"), top
        loss.backward()
        if cfg is None:
            opt.step()
        else:
            opt.step(probe=lambda: loss_fn(model(x[j]), y[j]))
            top = max(top, *opt.lrs)
    with torch.no_grad():
        return float(loss_fn(model(xv), yv)), top


def main(steps: int = 600, seeds: int = 1, lrs=(1e-4, 1e-3, 1e-2)) -> dict[str, list[float]]:
    torch.set_num_threads(1)
    table = {}
    print(f"{'method':38s} " + " ".join(f"lr0={lr:<9g}" for lr in lrs) + "  largest rate")
    for name, cfg in CONFIGS.items():
        vals, tops = [], []
        for lr in lrs:
            runs = [train(cfg, lr, steps, s) for s in range(seeds)]
            vals.append(sum(v for v, _ in runs) / seeds)
            tops.append(max(t for _, t in runs))
        table[name] = vals
        print(f"{name:38s} " + " ".join(f"{v:<13.4f}" for v in vals) + f"  {max(tops):.3g}")
    return table


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=1)
    a = ap.parse_args()
    main(a.steps, a.seeds)
