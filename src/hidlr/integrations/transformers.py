"""HiDLR in the Transformers ``Trainer``: a ``TrainerCallback`` that gives HiDLR its probe, keeps the
Trainer's default schedule from multiplying HiDLR's rates, and logs the applied rates.

Usage::

    opt = HiDLR(torch.optim.AdamW(groups, lr=1e-4))
    trainer = Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, None),
                      callbacks=[HiDLRCallback()])

The Trainer calls ``optimizer.step()`` with no closure; the callback's probe re-runs the model's
latest training forward (:class:`hidlr.probes.LatestBatchProbe`: the same inputs, labels included,
and the model's own ``.loss``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from transformers import TrainerCallback

from hidlr.optim import HiDLR
from hidlr.probes import BatchStream, DataProbe, LatestBatchProbe, output_of

SCHEDULES = ("constant", "keep")


def _one(step: int) -> float:
    return 1.0


def find_hidlr(optimizer: Any) -> HiDLR | None:
    """The HiDLR inside ``optimizer`` and the wrappers around it (accelerate's ``.optimizer``)."""
    seen = 0
    while optimizer is not None and not isinstance(optimizer, HiDLR) and seen < 8:
        optimizer, seen = getattr(optimizer, "optimizer", None), seen + 1
    return optimizer if isinstance(optimizer, HiDLR) else None


class HiDLRCallback(TrainerCallback):
    """Makes a HiDLR optimizer (``Trainer(optimizers=(HiDLR(...), scheduler or None))``) work in the
    Trainer with no hand-built probe.

    - **Probe**: unless the HiDLR already has a default probe, a :class:`~hidlr.probes.LatestBatchProbe`
      of the model (forward only, dropout off, common random numbers); ``loss(output)`` picks the
      loss from the model's output when it does not return ``.loss`` (a custom ``compute_loss`` is
      not seen by the probe). With ``probe_data`` (an iterable of collated batches, e.g. a
      ``DataLoader`` over the training set with the Trainer's collator), a
      :class:`~hidlr.probes.DataProbe` instead: each refresh probes the next of those batches, not
      the gradient's own (an unbiased slope; see ``docs/guide/probes.md``).
    - **Schedule**: HiDLR multiplies its rates by the scheduler's factor. The Trainer builds a
      ``"linear"`` decay to 0 (with ``lr_scheduler_type``'s default) when given ``None``, which would
      drive HiDLR's rates to 0 by the last step. ``schedule="constant"`` (default) holds any
      ``LambdaLR`` schedule (the Trainer's own kinds) at factor 1, with a warning when it was not
      constant, so the rates apply as HiDLR chooses them; other scheduler classes are refused.
      ``schedule="keep"`` lets the schedule multiply HiDLR's rates (a decay on top of them).
    - **Step budget**: a HiDLR with ``total_steps=None`` is told the Trainer's ``max_steps`` (rates
      may then grow only during its first quarter; see :class:`~hidlr.HiDLR`); ``step_budget=False``
      leaves it unset.
    - **Logs**: ``learning_rate`` is group 0's applied rate (``HiDLR.lrs``) and
      ``learning_rate/<group name>`` (or ``learning_rate/<index>``) every group's. The Trainer hands
      ``logs`` to its reporting callbacks (TensorBoard, W&B, ...) before this one, so the per-group
      keys reach ``trainer.state.log_history`` and the callbacks after this one; to send them to
      reporters too, put the callback first: ``trainer.callback_handler.callbacks.insert(0, cb)``.
    """

    def __init__(
        self,
        *,
        schedule: str = "constant",
        loss: Any = None,
        eval_mode: bool = True,
        probe_data: Any = None,
        step_budget: bool = True,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be callable or None, got {type(loss).__name__}")
        if probe_data is not None:
            BatchStream(probe_data)  # refuse a non-iterable now, not at the first refresh
        self.schedule, self.loss, self.eval_mode, self.probe_data = schedule, loss, bool(eval_mode), probe_data
        self.step_budget = bool(step_budget)
        self._opt: HiDLR | None = None
        self._probe: LatestBatchProbe | DataProbe | None = None

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        opt = find_hidlr(optimizer)
        if opt is None:
            raise TypeError(
                f"HiDLRCallback: the Trainer's optimizer is {type(optimizer).__name__}, not a HiDLR; "
                "pass optimizers=(HiDLR(...), None) to the Trainer"
            )
        self._opt = opt
        if self.step_budget and opt.total_steps is None and int(state.max_steps) > 0:
            opt.total_steps = int(state.max_steps)
        if opt.default_probe is None:
            if self.probe_data is None:
                self._probe = LatestBatchProbe(model, loss=self.loss, eval_mode=self.eval_mode)
            else:
                loss = self.loss
                self._probe = DataProbe(
                    model,
                    self.probe_data,
                    loss=None if loss is None else lambda m, batch: loss(output_of(m, batch)),
                    eval_mode=self.eval_mode,
                )
            opt.default_probe = self._probe
        if self.schedule == "constant":
            self._hold_constant(getattr(lr_scheduler, "scheduler", lr_scheduler), opt, args, state)

    def _hold_constant(self, scheduler: Any, opt: HiDLR, args: Any, state: Any) -> None:
        if scheduler is None:
            return
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise ValueError(
                f"HiDLRCallback(schedule='constant') holds only LambdaLR schedules constant, got "
                f"{type(scheduler).__name__}; pass schedule='keep' to let it multiply HiDLR's rates"
            )
        ends = [0, max(int(state.max_steps), 1)]
        factors = [float(f(t)) for f in scheduler.lr_lambdas for t in ends]
        if all(f == 1.0 for f in factors):
            return
        kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
        warnings.warn(
            f"HiDLRCallback: the learning-rate schedule (lr_scheduler_type={kind!r}) "
            f"would multiply HiDLR's rates by factors from {factors[0]:.3g} to {factors[1]:.3g}; it is "
            "held at 1 so that the rates apply as HiDLR chooses them (HiDLRCallback(schedule='keep') "
            "keeps the schedule)",
            UserWarning,
            stacklevel=2,
        )
        scheduler.lr_lambdas = [_one] * len(scheduler.lr_lambdas)
        for group, base in zip(opt.param_groups, scheduler.base_lrs):
            group["lr"] = base
        scheduler._last_lr = [group["lr"] for group in opt.param_groups]

    def on_optimizer_step(self, args: Any, state: Any, control: Any, lr_scheduler: Any = None, **kwargs: Any) -> None:
        # the Trainer logs ``lr_scheduler.get_last_lr()[0]`` read right after this event
        if self._opt is not None and lr_scheduler is not None and hasattr(lr_scheduler, "get_last_lr"):
            scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)
            scheduler._last_lr = list(self._opt.lrs)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self._opt is None or logs is None or "learning_rate" not in logs:
            return
        rates = self._opt.lrs
        extra = {"learning_rate": rates[0]}
        for k, (group, rate) in enumerate(zip(self._opt.param_groups, rates)):
            extra[f"learning_rate/{group.get('name', k)}"] = rate
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("learning_rate") is not None:
            state.log_history[-1].update(extra)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._probe is not None:
            self._probe.close()
            if self._opt is not None and self._opt.default_probe is self._probe:
                self._opt.default_probe = None
        self._probe, self._opt = None, None
