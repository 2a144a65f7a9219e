"""`hidlr demo`: Hi-DLR against plain Adam on an MLP over scikit-learn's bundled digits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from hidlr import HiDLR, groups


@dataclass
class RunResult:
    """One training run: final validation loss and accuracy, seconds, and rates over time."""

    name: str
    val_loss: float
    val_acc: float
    seconds: float
    rates: list[tuple[int, list[float]]] = field(default_factory=list)


def load_digits_split(seed: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Digits (1797 images of 8x8, 10 classes): returns x_train (1400, 64), y_train, x_val, y_val."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - dev/bench extras install it
        raise ImportError("the demo needs scikit-learn: pip install 'hidlr[dev]'") from err
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32, device=device)
    y = torch.tensor(y, device=device)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(device)
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


def make_mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def train_digits(name: str, lr: float, use_hidlr: bool, steps: int, seed: int,
                 batch_size: int = 64, log_every: int = 50) -> RunResult:
    """Train the MLP with Adam (optionally wrapped in HiDLR, one group per layer); probes use a
    second batch drawn from the training set."""
    xtr, ytr, xva, yva = load_digits_split(seed)
    model = make_mlp(seed)
    loss_fn = nn.CrossEntropyLoss()
    base = torch.optim.Adam(groups.by_layer(model), lr=lr)
    opt = HiDLR(base) if use_hidlr else base
    gen = torch.Generator().manual_seed(seed)
    rates = []
    start = time.perf_counter()
    for t in range(steps):
        idx = torch.randint(len(xtr), (batch_size,), generator=gen)
        opt.zero_grad()
        loss_fn(model(xtr[idx]), ytr[idx]).backward()
        if use_hidlr:
            pidx = torch.randint(len(xtr), (batch_size,), generator=gen)
            opt.step(probe=lambda: loss_fn(model(xtr[pidx]), ytr[pidx]))
            if t % log_every == 0 or t == steps - 1:
                rates.append((t, list(opt.lrs)))
        else:
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = model(xva)
        val_loss = float(loss_fn(logits, yva))
        val_acc = float((logits.argmax(1) == yva).float().mean())
    return RunResult(name, val_loss, val_acc, seconds, rates)


def run_demo(steps: int = 300, seed: int = 0, console: Console | None = None) -> list[RunResult]:
    """Four runs: Adam and Hi-DLR(Adam), each from a good (1e-3) and a poor (1e-4) starting rate."""
    console = console or Console()
    console.print(f"[bold]hidlr demo[/]: MLP (64-128-128-10) on digits, {steps} steps, batch 64, "
                  "one Hi-DLR group per layer\n")
    results = []
    for lr in (1e-3, 1e-4):
        for use in (False, True):
            name = f"{'Hi-DLR(Adam)' if use else 'Adam'} from lr={lr:g}"
            results.append(train_digits(name, lr, use, steps, seed))
            r = results[-1]
            if r.rates:
                table = Table(title=f"{name}: each layer's rate as Hi-DLR re-chooses it")
                table.add_column("step", justify="right")
                for k in range(len(r.rates[0][1])):
                    table.add_column(f"layer {k}", justify="right")
                for t, lrs in r.rates:
                    table.add_row(str(t), *(f"{v:.2e}" for v in lrs))
                console.print(table)
    summary = Table(title="Final validation loss and accuracy (same data, seed and steps)")
    for col in ("run", "val loss", "val acc", "seconds"):
        summary.add_column(col, justify="right" if col != "run" else "left")
    for r in results:
        summary.add_row(r.name, f"{r.val_loss:.4f}", f"{r.val_acc:.3f}", f"{r.seconds:.1f}")
    console.print(summary)
    return results
