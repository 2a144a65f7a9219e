"""The official GeN package (``gen-optim``, module ``GeN``) driven as its README shows.

Its published usage, between ``loss.backward()`` and ``optimizer.step()``::

    if (batch_idx + 1) % lazy_freq == 0:
        lr_parabola(model, optimizer, tr_iter=tr_iter, task='image_cls', scale=scale)

``lr_parabola`` takes one step of the base optimizer itself, evaluates the loss of a fresh batch
from ``tr_iter`` at the rate multiples ``lr_factor`` (default -1, 0, 1), fits a parabola (SciPy)
and, if the fit is convex with R^2 > 0.99, moves every group's rate towards the fitted optimum
(clipped to [lr/2, 2 lr], smoothing 0.9). :class:`GenOptimStepper` calls it at the package's
defaults (``scale=1.0``, ``lr_factor=[-1, 0, 1]``) every ``LAZY_FREQ`` steps, the README's
recommended lazy frequency, and presents an optimizer's ``step``/``zero_grad``/``param_groups``.

The package's ``image_cls`` forward is ``criterion(net(inputs), targets)``; a workload's loss is
``loss(model, batch)`` of any batch structure, so the batch travels as the input in a box and the
criterion returns the network's output (the loss) unchanged. BatchNorm running statistics are left
untouched during the package's probe passes, as in every other probing method of the benchmark.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

LAZY_FREQ = 4


class BatchBox:
    """A workload batch carried through ``lr_parabola``'s ``inputs.to(device)`` unchanged."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def to(self, device: Any) -> BatchBox:
        return self


class LossNet(nn.Module):
    """``LossNet(model, loss)(BatchBox(b)) = loss(model, b)``; its parameters are the model's."""

    def __init__(
        self,
        model: nn.Module,
        loss: Callable[[nn.Module, Any], torch.Tensor],
        guard: Callable[[], contextlib.AbstractContextManager] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.guard = guard

    def forward(self, box: BatchBox) -> torch.Tensor:
        with self.guard() if self.guard is not None else contextlib.nullcontext():
            return self.loss(self.model, box.batch)


def loss_as_criterion(output: torch.Tensor, _target: Any) -> torch.Tensor:
    """The criterion handed to ``lr_parabola``: the network already returned the loss."""
    return output


class GenOptimStepper:
    """``base`` stepped with ``GeN.lr_parabola`` every ``lazy_freq`` steps, before the step.

    Args:
        model: the trained network (its trainable parameters are what ``base`` updates).
        base: the base optimizer (its groups' rates are what GeN adapts).
        loss: ``loss(model, batch) -> scalar``.
        draw: ``draw() -> batch``, the stream of fresh batches for ``tr_iter``.
        guard: a context manager factory wrapped around the probe forward passes.
        lazy_freq: call ``lr_parabola`` on steps ``lazy_freq, 2 lazy_freq, ...``.
    """

    def __init__(
        self,
        model: nn.Module,
        base: torch.optim.Optimizer,
        loss: Callable[[nn.Module, Any], torch.Tensor],
        draw: Callable[[], Any],
        guard: Callable[[], contextlib.AbstractContextManager] | None = None,
        lazy_freq: int = LAZY_FREQ,
    ) -> None:
        from GeN import lr_parabola  # the official package; ImportError when missing

        if lazy_freq < 1:
            raise ValueError(f"lazy_freq must be >= 1, got {lazy_freq}")
        self._lr_parabola = lr_parabola
        self.base, self.lazy_freq = base, lazy_freq
        self.net = LossNet(model, loss, guard)
        self._batches = _stream(draw)
        self.steps = 0
        self.calls = 0
        self.fit_failures = 0  # lr_parabola caught an exception (it then halves the rates)
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.lazy_freq == 0:
            printed = io.StringIO()
            # The package prints a failed fit's exception; SciPy warns on every exact 3-point fit.
            with contextlib.redirect_stdout(printed), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Covariance of the parameters could not be estimated")
                self._lr_parabola(
                    self.net,
                    self.base,
                    criterion=loss_as_criterion,
                    tr_iter=self._batches,
                    device=self.device,
                    task="image_cls",
                )
            self.calls += 1
            self.fit_failures += bool(printed.getvalue().strip())
        self.base.step()

    def stats(self) -> dict[str, int]:
        """How often ``lr_parabola`` ran and how often its fit raised (the rates were then halved)."""
        return {"lr_parabola_calls": self.calls, "fit_failures": self.fit_failures}


def _stream(draw: Callable[[], Any]) -> Iterator[tuple[BatchBox, torch.Tensor]]:
    """An endless ``tr_iter``: (boxed fresh batch, an empty target) pairs; the package moves both
    to the device and hands the target to the criterion, which ignores it."""
    while True:
        yield BatchBox(draw()), torch.empty(0)
