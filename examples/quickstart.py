"""Quick start: Hi-DLR around AdamW on digits, one group per layer; prints the rates it chose."""

import torch
from torch import nn

from hidlr import HiDLR, groups
from hidlr.demo import load_digits_split


def main(steps: int = 200) -> list[float]:
    torch.manual_seed(0)
    x, y, x_val, y_val = load_digits_split(seed=0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    opt = HiDLR(torch.optim.AdamW(groups.by_layer(model), lr=1e-3))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i, j = torch.randint(len(x), (2, 64), generator=gen)
        opt.zero_grad()
        loss_fn(model(x[i]), y[i]).backward()
        opt.step(probe=lambda: loss_fn(model(x[j]), y[j]))
    with torch.no_grad():
        print(f"validation loss {loss_fn(model(x_val), y_val).item():.4f}")
    print("rates per layer:", [f"{r:.2e}" for r in opt.lrs], f"after {len(opt.history)} refreshes")
    return opt.lrs


if __name__ == "__main__":
    main()
