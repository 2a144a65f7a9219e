"""The wrapper torch puts around every optimizer's ``step`` (step hooks and the profiler's label),
entered only when a hook or the profiler is there to use it.

``torch.optim.Optimizer`` wraps ``step`` in :meth:`~torch.optim.Optimizer.profile_hook_step` the first
time a subclass is built. HiDLR's step calls its base optimizer's step, which is wrapped too, so a
plain step would pay for the wrapper twice (a profiler range and two hook loops) on every step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer


def _global_hooks() -> bool:
    """Whether step hooks are registered for all optimizers (True when this torch keeps them
    elsewhere, so the full wrapper runs)."""
    pre = getattr(torch_optimizer, "_global_optimizer_pre_hooks", None)
    post = getattr(torch_optimizer, "_global_optimizer_post_hooks", None)
    return pre is None or post is None or bool(pre) or bool(post)


def hooks_when_used(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` behind torch's wrapper while the optimizer has step hooks, global hooks are registered
    or the autograd profiler runs; otherwise ``step`` itself, then the profiler's entry point
    ``_optimizer_step_code`` as torch calls it. Marked ``hooked`` so that ``Optimizer.__init__`` leaves
    it as it is."""
    full = torch.optim.Optimizer.profile_hook_step(step)

    @functools.wraps(step)
    def wrapper(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        if (
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or _global_hooks()
            or torch.autograd._profiler_enabled()
        ):
            return full(self, *args, **kwargs)
        out = step(self, *args, **kwargs)
        self._optimizer_step_code()
        return out

    wrapper.hooked = True  # type: ignore[attr-defined]
    return wrapper
