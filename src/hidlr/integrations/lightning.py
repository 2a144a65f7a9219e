"""HiDLR in Lightning: a ``Callback`` that gives every HiDLR optimizer a probe built from
``training_step``, and a ``LearningRateMonitor`` that logs the rates HiDLR applies.

Usage::

    trainer = lightning.Trainer(callbacks=[HiDLRCallback(), LearningRateMonitor()], ...)

with ``configure_optimizers`` returning ``HiDLR(torch.optim.AdamW(...))`` (a scheduler on the
HiDLR optimizer multiplies its rates). Without the callback HiDLR still works under automatic
optimization: Lightning calls ``optimizer.step(closure)`` and HiDLR re-evaluates that closure as its
probe (:class:`hidlr.probes.ClosureProbe`), which costs a backward pass per probe and lets
``self.log`` calls in ``training_step`` record the probes' losses.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterable, Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor as _StockMonitor
from lightning.pytorch.utilities import rank_zero_warn

from hidlr.optim import HiDLR
from hidlr.probes import BatchStream, Probe, loss_of_output


def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


@contextlib.contextmanager
def _muted_logging(module: pl.LightningModule) -> Iterator[None]:
    """``self.log`` and ``self.log_dict`` do nothing inside: probe losses are not training metrics."""
    module.log = _no_log
    module.log_dict = _no_log
    try:
        yield
    finally:
        del module.log
        del module.log_dict


def _takes_batch_index(step_fn: Any) -> bool:
    """Whether ``step_fn(batch, batch_idx)`` is valid (``training_step`` may take the batch alone)."""
    try:
        params = list(inspect.signature(step_fn).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2


class TrainingStepProbe(Probe):
    """The loss ``training_step`` returns on the latest training batch (recorded by
    :class:`HiDLRCallback`), or, with ``batches``, on a batch of its own drawn at each refresh
    (:class:`hidlr.probes.BatchStream`, moved to the module's device by the strategy), under the
    probe rules, Lightning's precision context, and with ``self.log`` muted."""

    def __init__(
        self,
        trainer: pl.Trainer,
        module: pl.LightningModule,
        *,
        eval_mode: bool = True,
        batches: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(module, eval_mode=eval_mode)
        self.trainer = trainer
        self.batch: Any = None
        self.batch_idx = 0
        self.stream = None if batches is None else BatchStream(batches)
        self._stale = True
        self._with_index = _takes_batch_index(module.training_step)

    def begin_step(self, step: int, closure: Any = None) -> None:
        super().begin_step(step, closure)
        self._stale = True

    def loss(self) -> torch.Tensor:
        if self.stream is not None and self._stale:
            self.batch = self.trainer.strategy.batch_to_device(self.stream.draw())
            self.batch_idx += 1
            self._stale = False
        if self.batch is None:
            raise RuntimeError("TrainingStepProbe has seen no training batch yet")
        args = (self.batch, self.batch_idx) if self._with_index else (self.batch,)
        with _muted_logging(self.model), self.trainer.precision_plugin.train_step_context():
            return loss_of_output(self.model.training_step(*args))


class HiDLRCallback(pl.Callback):
    """Gives each HiDLR optimizer of the trainer a :class:`TrainingStepProbe` (unless it already has
    a default probe): ``training_step`` on the latest batch, forward only.

    It also makes Lightning's stock ``LearningRateMonitor`` callbacks of the same trainer log
    HiDLR's applied rates (their class becomes :class:`LearningRateMonitor` for the fit and is put
    back at teardown; ``fix_monitors=False`` leaves them alone: they then show ``group["lr"]``, the
    scheduler's value, and each group of a scheduled HiDLR twice). Automatic optimization only: with
    manual optimization, pass ``probe=`` to ``step`` yourself.

    Args:
        eval_mode: switch dropout off in the probes (see :mod:`hidlr.probes`).
        fix_monitors: upgrade stock ``LearningRateMonitor`` callbacks as above.
        step_budget: tell a HiDLR with ``total_steps=None`` the trainer's step budget
            (``trainer.estimated_stepping_batches``, when finite; automatic optimization only):
            rates may then grow only during its first quarter (see :class:`~hidlr.HiDLR`).
        probe_data: an iterable of batches (a ``DataLoader`` over the training set with its own
            shuffling, or over held-out data): each refresh probes ``training_step`` on the next of
            them instead of the latest training batch (an unbiased slope; see
            ``docs/guide/probes.md``). None: the latest training batch.
    """

    def __init__(
        self,
        *,
        eval_mode: bool = True,
        fix_monitors: bool = True,
        probe_data: Iterable[Any] | None = None,
        step_budget: bool = True,
    ) -> None:
        if probe_data is not None:
            BatchStream(probe_data)  # refuse a non-iterable now, not at the first refresh
        self.eval_mode, self.fix_monitors, self.probe_data = bool(eval_mode), bool(fix_monitors), probe_data
        self.step_budget = bool(step_budget)
        self._probe: TrainingStepProbe | None = None
        self._installed: list[HiDLR] = []
        self._upgraded: list[_StockMonitor] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.fix_monitors:
            for cb in trainer.callbacks:
                if type(cb) is _StockMonitor:
                    cb.__class__ = LearningRateMonitor
                    self._upgraded.append(cb)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        hidlrs = [opt for opt in trainer.optimizers if isinstance(opt, HiDLR)]
        if not hidlrs:
            rank_zero_warn("HiDLRCallback: configure_optimizers returned no HiDLR optimizer; the callback does nothing")
            return
        if not pl_module.automatic_optimization:
            return
        self._probe = TrainingStepProbe(trainer, pl_module, eval_mode=self.eval_mode, batches=self.probe_data)
        budget = trainer.estimated_stepping_batches
        for opt in hidlrs:
            if self.step_budget and opt.total_steps is None and math.isfinite(budget) and budget >= 1:
                opt.total_steps = int(budget)
            if opt.default_probe is None:
                opt.default_probe = self._probe
                self._installed.append(opt)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._probe is not None and self._probe.stream is None:
            self._probe.batch, self._probe.batch_idx = batch, batch_idx

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for opt in self._installed:
            if opt.default_probe is self._probe:
                opt.default_probe = None
        for cb in self._upgraded:
            cb.__class__ = _StockMonitor
        self._installed, self._upgraded, self._probe = [], [], None


class LearningRateMonitor(_StockMonitor):
    """Lightning's ``LearningRateMonitor`` that logs each HiDLR group once, with the rate HiDLR
    applies (``HiDLR.lrs``: its estimate times any scheduler's factor, 0 for a frozen group; logged at the start of a
    batch, so a refresh in that batch's step shows at the next one). Other optimizers are logged as
    the stock monitor logs them; the same arguments."""

    def _find_names_from_optimizers(
        self, optimizers: list[Any], seen_optimizers: list[torch.optim.Optimizer], seen_optimizer_types: Any
    ) -> tuple[list[list[str]], list[torch.optim.Optimizer]]:
        # the stock monitor unwraps any ``.optimizer`` attribute (meant for DeepSpeed), which turns a
        # HiDLR into its base optimizer: logged a second time, with the scheduler's value
        names, without_scheduler = [], []
        for optimizer in optimizers:
            if not isinstance(optimizer, HiDLR) and hasattr(optimizer, "optimizer"):
                optimizer = optimizer.optimizer
            if optimizer in seen_optimizers:
                continue
            name = "lr-" + optimizer.__class__.__name__
            names.append(
                self._check_duplicates_and_update_name(optimizer, name, seen_optimizers, seen_optimizer_types, None)
            )
            without_scheduler.append(optimizer)
        return names, without_scheduler

    def _get_optimizer_stats(self, optimizer: torch.optim.Optimizer, names: list[str]) -> dict[str, float]:
        stats = super()._get_optimizer_stats(optimizer, names)
        if isinstance(optimizer, HiDLR):
            for name, rate in zip(names, optimizer.lrs):
                stats[name] = rate
                self.lrs[name][-1] = rate
        return stats
