"""Run a module's forward passes in float64 for a while, then restore it bit for bit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def _cast_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.to(torch.float64) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


@contextlib.contextmanager
def in_float64(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``model``'s floating parameters and buffers are float64 and its floating
    inputs (to it or any submodule) are cast to float64; on exit every parameter and buffer gets back
    its original tensor (dtype and values exactly: running statistics updated inside are discarded), and parameters keep
    their identity, so optimizers stay valid.

    Curvature computed inside (:func:`hidlr.curvature.along` etc.) is then free of float32
    rounding. Loss terms computed outside the model (targets) are promoted by PyTorch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    saved_params = [(p, p.data) for p in model.parameters()]
    # buffers come back as they were: forward passes inside (BatchNorm in train mode) leave no trace
    saved_buffers = [
        (m, name, b, b.clone()) for m in model.modules() for name, b in m.named_buffers(recurse=False) if b is not None
    ]
    for p, data in saved_params:
        if data.is_floating_point():
            p.data = data.to(torch.float64)
    for m, name, b, _ in saved_buffers:
        if b.is_floating_point():
            setattr(m, name, b.to(torch.float64))
    # every submodule casts its inputs: models whose loss calls a submodule directly work too
    handles = [m.register_forward_pre_hook(_cast_inputs) for m in model.modules()]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        for p, data in saved_params:
            p.data = data
        for m, name, b, copy in saved_buffers:
            b.copy_(copy)
            setattr(m, name, b)
