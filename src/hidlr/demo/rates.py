"""The demo's optimizer part: Hi-DLR(Adam) against plain Adam from several starting rates, an MLP
over scikit-learn's bundled digits, recording losses and each group's rate at every step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hidlr import HiDLR, groups
from hidlr.optim.schedule import anneal_factor


@dataclass
class RunResult:
    """One training run.

    ``train_loss``: the minibatch loss at every step (steps,); ``val_steps``/``val_loss``: the
    validation loss at those steps; ``rates``: ``(step, [rate per group])`` with the rate each group
    applied in that step (every step); ``chosen``: the rate per group at the end before Hi-DLR's
    end-of-run anneal (its estimates; Adam: its rates); ``group_names``: the param groups' names;
    ``first_refresh``: Hi-DLR's record of its step-0 refresh (None for Adam).
    """

    name: str
    optimizer: str
    lr0: float
    val_loss: float
    val_acc: float
    seconds: float
    group_names: list[str] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    rates: list[tuple[int, list[float]]] = field(default_factory=list)
    refresh_steps: list[int] = field(default_factory=list)
    chosen: list[float] = field(default_factory=list)
    first_refresh: dict[str, Any] | None = None
    ema: float = 0.0
    clip: tuple[float, float] | None = None


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
    """The demo's MLP, 64-128-128-10, initialised from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def train_digits(
    name: str, lr: float, use_hidlr: bool, steps: int, seed: int, batch_size: int = 64, val_every: int = 10
) -> RunResult:
    """Train the MLP with Adam (optionally wrapped in HiDLR, one group per layer) from rate ``lr``.

    Probes use a second batch drawn from the training set. Every run sees the same initial weights
    and minibatches (``seed``).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    xtr, ytr, xva, yva = load_digits_split(seed)
    model = make_mlp(seed)
    loss_fn = nn.CrossEntropyLoss()
    param_groups = groups.by_layer(model)
    base = torch.optim.Adam(param_groups, lr=lr)
    opt = HiDLR(base, total_steps=steps) if use_hidlr else base  # the run's length is known
    res = RunResult(
        name,
        "Hi-DLR(Adam)" if use_hidlr else "Adam",
        lr,
        float("nan"),
        float("nan"),
        0.0,
        group_names=[f"layer {g['name']}" for g in param_groups],
    )
    gen = torch.Generator().manual_seed(seed)

    def validate(step: int) -> None:
        with torch.no_grad():
            res.val_steps.append(step)
            res.val_losses.append(float(loss_fn(model(xva), yva)))

    start = time.perf_counter()
    validate(0)
    for t in range(steps):
        idx = torch.randint(len(xtr), (batch_size,), generator=gen)
        pidx = torch.randint(len(xtr), (batch_size,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(model(xtr[idx]), ytr[idx])
        loss.backward()
        if use_hidlr:
            refreshes = opt.refresh_count
            opt.step(probe=lambda: loss_fn(model(xtr[pidx]), ytr[pidx]))
            if opt.refresh_count > refreshes:
                res.refresh_steps.append(t)
            # the rates applied in step t: set by its refresh, if any, times the end-of-run anneal
            res.rates.append((t, [e * anneal_factor(opt.rules, t) for e in opt.estimates]))
        else:
            opt.step()
            res.rates.append((t, [g["lr"] for g in opt.param_groups]))
        res.train_loss.append(float(loss.detach()))
        if (t + 1) % val_every == 0 or t == steps - 1:
            validate(t + 1)
    res.seconds = time.perf_counter() - start
    res.chosen = list(opt.estimates) if use_hidlr else [g["lr"] for g in opt.param_groups]
    with torch.no_grad():
        logits = model(xva)
        res.val_loss = float(loss_fn(logits, yva))
        res.val_acc = float((logits.argmax(1) == yva).float().mean())
    if use_hidlr and opt.history:
        rules = opt.rules  # the first refresh uses first_clip without smoothing when that is set
        first = getattr(rules, "first_clip", None) is not None
        res.first_refresh = opt.history[0]
        res.ema, res.clip = (0.0, rules.first_clip) if first else (rules.ema, rules.clip)
    return res


def run_rates(
    lrs: tuple[float, ...], steps: int, seed: int, tick: Callable[[str], None] | None = None
) -> list[RunResult]:
    """Adam and Hi-DLR(Adam) from each starting rate in ``lrs``: ``2 * len(lrs)`` runs."""
    out = []
    for lr in lrs:
        for use in (False, True):
            name = f"{'Hi-DLR(Adam)' if use else 'Adam'} from lr={lr:g}"
            out.append(train_digits(name, lr, use, steps, seed))
            if tick is not None:
                tick(name)
    return out


def explain_step_zero(run: RunResult) -> str:
    """Why the rate applied in step 0 already differs from the starting rate, from the run's own
    step-0 refresh record (one sentence per group)."""
    rec = run.first_refresh
    if rec is None:
        return f"{run.name}: no refresh was recorded."
    keep = f"{run.ema:g} x old + {1 - run.ema:g} x target"
    clip = f"between {run.clip[0]:g}x and {run.clip[1]:g}x the current rate (clip)" if run.clip else "unclipped"
    steps = ", ".join(str(t) for t in run.refresh_steps[:6]) + (", ..." if len(run.refresh_steps) > 6 else "")
    lines = [
        f"Step 0 is a refresh step (this run refreshed at steps {steps}): before the "
        "first update is applied, Hi-DLR probes the loss along each group's update, fits a quadratic, "
        "takes its Newton rate (times a momentum correction) as the target, keeps the target "
        + (
            f"{clip}, and sets the rate to it (the first refresh is not smoothed: lr0 = {run.lr0:.2e} "
            "was a guess, not an estimate)."
            if run.ema == 0
            else f"{clip}, and moves the rate from lr0 = {run.lr0:.2e} towards it, smoothed (ema {run.ema:g}: "
            f"new = {keep})."
        )
        + f" So the rate applied in step 0 is already the refreshed one. In {run.name}:"
    ]
    for name, g in zip(run.group_names, rec["groups"]):
        if g.get("accepted"):
            how = "" if run.ema == 0 else f" = {run.ema:g} x {g['rate']:.2e} + {1 - run.ema:g} x {g['target']:.2e}"
            lines.append(
                f"  {name}: Newton {g['newton_rate']:.2e}, target {g['target']:.2e}, applied {g['estimate']:.2e}{how}"
            )
        else:
            lines.append(f"  {name}: kept {g['estimate']:.2e} ({g.get('reason') or 'fit not accepted'})")
    return "\n".join(lines)
