"""The minibatch training loop behind every estimator's ``fit``, for single and stacked nets.

:func:`train_epochs` runs the epochs of one fit (shuffling from seeds, Hi-DLR's probe closure with
common random numbers, per-epoch callbacks and an optional progress bar); :class:`FitPlan` carries
the standardized data and resolved options; :func:`seeded` makes a block's random draws
reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from hidlr.probes import probe_context


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with the global RNG of ``device`` (and the CPU) seeded, restoring it afterwards.

    Used for reproducible fits and for common random numbers: two blocks entered with the same
    seed draw the same noise (dropout masks, reparameterisation samples). On the CPU it seeds only
    the CPU generator: ``torch.manual_seed`` also queues a seed, with a stack trace, for every
    accelerator backend not yet initialised, about a millisecond per call (a Hi-DLR refresh of a
    stochastic net seeds once per probe).
    """
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    else:
        index = device.index if device.index is not None else 0
        with torch.random.fork_rng(devices=[index], device_type=device.type):
            torch.manual_seed(seed)  # an initialised accelerator: no queued lazy seeds, cheap
            yield


def fused_adam(groups: list[dict[str, Any]], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where PyTorch has one (CPU and CUDA floating tensors): the same
    update as the default loop, in less time per step for small nets. Its ``eps`` is Adam's 1e-8,
    raised to the smallest normal number of a float16 net's dtype (1e-8 rounds to 0 there, and a
    parameter without gradient then steps by 0 / 0)."""
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    eps = max([1e-8] + [torch.finfo(p.dtype).tiny for p in params if p.is_floating_point()])
    return torch.optim.Adam(groups, lr=lr, eps=eps, fused=fused)


def _accepts_probe(opt: torch.optim.Optimizer) -> bool:
    """True for a Hi-DLR optimizer, whose ``step`` takes a ``probe`` closure."""
    try:
        from hidlr import HiDLR
    except ImportError:
        return False
    return isinstance(opt, HiDLR)


@dataclass
class FitPlan:
    """Standardized training data and resolved options of one fit (see :meth:`Estimator.prepare_fit`).

    ``xs: (n, d)``, ``ys: (n,)`` in the working dtype; ``val``: validation ``(X (m, d), y (m,))``
    in user units, float64, or ``None``; ``val_samples``: Monte Carlo passes for its NLL (``None``:
    deterministic net); ``scaling``: the fitted maps (see :func:`~hidlr.uq.models.scaling.fit_scaling`);
    ``patience``: early-stopping patience in epochs (``None``: train every epoch); ``refit``: train
    again on every row afterwards; ``val_rows``: ``(m,)`` indices of the carved validation rows in
    the data given to ``fit`` (``None`` when none were carved).
    """

    xs: Tensor
    ys: Tensor
    epochs: int
    batch_size: int
    probe_size: int
    lr: float
    val: tuple[Tensor, Tensor] | None
    val_samples: int | None = None
    scaling: dict[str, Tensor] = field(default_factory=dict)
    seed: int = 0
    patience: int | None = None
    refit: bool | None = None
    val_rows: Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.xs.shape[0])

    @property
    def d(self) -> int:
        return int(self.xs.shape[1])


def train_epochs(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    plan: FitPlan,
    seeds: Sequence[int],
    *,
    stochastic: bool,
    after_epoch: Callable[[int, Tensor], str],
    stacked: bool = False,
    progress: bool = False,
    stop: Callable[[], bool] | None = None,
) -> None:
    """The minibatch loop shared by single nets and stacked ensembles.

    A single net (one seed): ``net.loss`` gets ``x: (b, d)``, ``y: (b,)`` in the order of a generator
    seeded with it. ``stacked`` (a :class:`~hidlr.uq.models.stacked.StackedNets`, ``M`` seeds):
    member ``i`` follows the order
    of ``seeds[i]`` and ``net.loss`` gets ``x: (M, b, d)``, ``y: (M, b)``, so every member sees
    exactly the batches it would see alone. ``after_epoch(epoch, losses)`` gets the epoch's mean
    training loss (a scalar, or ``(M,)`` per member) and returns a progress-bar description;
    ``stop()``, asked after every epoch, ends training early when it returns True.
    """
    n, b, device = plan.n, plan.batch_size, plan.xs.device
    shuffles = [torch.Generator().manual_seed(s) for s in seeds]
    probe_gen = torch.Generator().manual_seed(seeds[0] + 7919)
    if not stacked and len(seeds) != 1:
        raise ValueError(f"a single net takes one seed, got {len(seeds)}")
    members = len(seeds) if stacked else None
    takes_probe = _accepts_probe(opt)
    batches = math.ceil(n / b)
    net.train()
    bar = _progress(progress, plan.epochs)
    try:
        for epoch in range(plan.epochs):
            perms = [torch.randperm(n, generator=g) for g in shuffles]
            perm = (perms[0] if members is None else torch.stack(perms)).to(device)
            total = torch.zeros(() if members is None else (members,), device=device, dtype=plan.xs.dtype)
            for i in range(batches):
                idx = perm[..., i * b : (i + 1) * b]
                opt.zero_grad(set_to_none=True)
                loss = net.loss(plan.xs[idx], plan.ys[idx])
                loss.backward()
                if takes_probe:
                    opt.step(probe=_Probe(net, plan.xs, plan.ys, plan.probe_size, probe_gen, stochastic, members))
                else:
                    opt.step()
                per_member = getattr(net, "last_losses", None) if members is not None else None
                total += (loss.detach() if per_member is None else per_member) * idx.shape[-1]
            description = after_epoch(epoch, total / n)
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=description)
            if stop is not None and stop():
                break
    finally:
        if bar is not None:
            bar[0].stop()


class EarlyStopping:
    """Tracks a validation loss per epoch; keeps a copy of the weights at the best epoch so far, and
    at the ``keep`` best epochs so far.

    ``update(epoch, value, net)`` after every epoch; ``stop`` is True once ``patience`` epochs in a
    row did not improve on the best; ``restore(net)`` loads the best weights back; ``states`` are
    the kept epochs' weights, best first (at most ``keep`` copies of the weights).
    """

    def __init__(self, patience: int, keep: int = 1) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.patience, self.keep = patience, keep
        self.best = math.inf
        self.best_epoch = 0
        self.wait = 0
        self._kept: list[tuple[float, int, dict[str, Tensor]]] = []  # (value, epoch, weights), best first

    @property
    def state(self) -> dict[str, Tensor] | None:
        """The best epoch's weights (None before a finite value was seen)."""
        return self._kept[0][2] if self._kept else None

    @property
    def states(self) -> list[dict[str, Tensor]]:
        return [state for _, _, state in self._kept]

    @property
    def epochs(self) -> list[int]:
        """The kept epochs, best first."""
        return [epoch for _, epoch, _ in self._kept]

    def update(self, epoch: int, value: float, net: nn.Module) -> None:
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        if value < math.inf and (len(self._kept) < self.keep or value < self._kept[-1][0]):
            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            self._kept.append((value, epoch, state))
            self._kept.sort(key=lambda kept: kept[0])  # stable: an earlier epoch wins a tie
            del self._kept[self.keep :]

    @property
    def stop(self) -> bool:
        return self.wait >= self.patience

    def restore(self, net: nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


def snapshot_nets(net: nn.Module, states: Sequence[dict[str, Tensor]]) -> list[nn.Module]:
    """Copies of ``net`` (in eval mode) holding each of ``states``."""
    nets = []
    for state in states:
        copy = deepcopy(net)
        copy.load_state_dict(state)
        nets.append(copy.eval())
    return nets


class _Probe:
    """Probe closure for one optimizer step: a fresh random minibatch of the (standardized)
    training data (``(size,)`` rows, or ``(members, size)`` for a stacked ensemble), drawn on the
    first call and reused by every call of the same step; for stochastic nets every call re-seeds
    the RNG to one per-step seed (common random numbers), so the probed loss is a deterministic
    function of the weights."""

    def __init__(
        self,
        net: nn.Module,
        xs: Tensor,
        ys: Tensor,
        batch_size: int,
        gen: torch.Generator,
        stochastic: bool,
        members: int | None = None,
    ):
        self.net, self.xs, self.ys, self.batch_size = net, xs, ys, batch_size
        self.gen, self.stochastic = gen, stochastic
        self.shape = (batch_size,) if members is None else (members, batch_size)
        self.batch: tuple[Tensor, Tensor] | None = None
        self.seed = 0

    def __call__(self) -> Tensor:
        if self.batch is None:
            idx = torch.randint(self.xs.shape[0], self.shape, generator=self.gen).to(self.xs.device)
            self.batch = (self.xs[idx], self.ys[idx])
            self.seed = int(torch.randint(2**62, (1,), generator=self.gen))
        with probe_context(
            self.net, eval_mode=False, seed=self.seed if self.stochastic else None, devices=[self.xs.device]
        ):
            return self.net.loss(*self.batch)


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = bar.add_task("training", total=total)
    bar.start()
    return bar, task
