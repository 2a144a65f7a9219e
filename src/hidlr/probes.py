"""Probe closures for :class:`~hidlr.HiDLR`: the loss at the current weights, re-evaluated under the
rules that make a curvature fit meaningful.

A refresh evaluates the probe a few times at perturbed weights and fits a parabola to the losses,
so every call of one refresh must see the same function of the weights:

- **no gradients** (the engine calls probes under ``torch.no_grad``);
- **eval mode for dropout**: the model is switched to eval mode for the call and every module's
  mode is restored afterwards; normalization layers with running statistics stay in the mode they
  were in (training mode keeps using batch statistics, as the training loss does);
- **frozen running statistics**: BatchNorm/InstanceNorm running means, variances and batch counts
  are put back after each call, so probes at perturbed weights leave nothing behind;
- **common random numbers**: the random generators (CPU and the model's accelerators) are seeded
  to one seed per step for every call and restored afterwards, so any remaining noise (dropout
  kept on with ``eval_mode=False``, sampled weights, noise in the loss) is the same in every probe
  of a refresh and the caller's random stream is untouched.

:class:`BatchProbe` re-evaluates a loss closure (a held-aside batch, or the training batch);
:class:`DataProbe` draws a batch of its own from a ``DataLoader`` at each refresh;
:class:`LatestBatchProbe` re-runs a model's latest training forward call (captured by a forward
hook: the inputs the framework fed, labels included, as in Hugging Face models that return
``.loss``); :class:`ClosureProbe` re-evaluates the closure given to ``HiDLR.step(closure)``. HiDLR
uses a :class:`ClosureProbe` when ``step`` gets a closure and no probe is set; :func:`probe_for_step`
is that rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

_SEED_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads consecutive steps over the seed space


@contextlib.contextmanager
def frozen_norm_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave the running statistics of every normalization layer (BatchNorm,
    InstanceNorm with ``track_running_stats``) exactly as they were (values restored on exit)."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats and m.running_mean is not None:
            nbt = m.num_batches_tracked
            saved.append((m, m.running_mean.clone(), m.running_var.clone(), None if nbt is None else nbt.clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, nbt in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                if nbt is not None:
                    m.num_batches_tracked.copy_(nbt)


@contextlib.contextmanager
def common_random_numbers(seed: int, devices: Iterable[torch.device] = ()) -> Iterator[None]:
    """Run a block with the CPU generator and the generators of ``devices`` (accelerators) seeded
    to ``seed``, restoring every one of them afterwards. Two blocks entered with the same seed draw
    the same numbers."""
    by_type: dict[str, set[int]] = {}
    for d in devices:
        d = torch.device(d)
        if d.type not in ("cpu", "meta"):
            module = torch.get_device_module(d.type)
            by_type.setdefault(d.type, set()).add(d.index if d.index is not None else module.current_device())
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        for kind, indices in by_type.items():
            stack.enter_context(torch.random.fork_rng(devices=sorted(indices), device_type=kind))
        torch.default_generator.manual_seed(seed)
        for kind, indices in by_type.items():
            module = torch.get_device_module(kind)
            for i in sorted(indices):
                with module.device(i):
                    module.manual_seed(seed)
        yield


@contextlib.contextmanager
def probe_context(
    model: nn.Module | None, *, eval_mode: bool = True, seed: int | None = None, devices: Iterable[torch.device] = ()
) -> Iterator[None]:
    """The rules of one probe call (module docstring): eval mode for dropout (``eval_mode``),
    frozen running statistics, common random numbers (``seed``; None: the generators are left
    alone), all restored on exit. ``model`` None applies the random-number rule only."""
    modes = [] if model is None else [(m, m.training) for m in model.modules()]
    with contextlib.ExitStack() as stack:
        if model is not None:
            stack.enter_context(frozen_norm_stats(model))
        if seed is not None:
            if model is not None:
                devices = [*devices, *{p.device for p in model.parameters()}]
            stack.enter_context(common_random_numbers(seed, devices))
        try:
            if eval_mode and model is not None:
                for m, training in modes:
                    # normalization layers keep batch statistics when training: the training loss uses them
                    m.training = training and isinstance(m, nn.modules.batchnorm._NormBase)
            yield
        finally:
            for m, training in modes:
                m.training = training


class Probe:
    """Base of the library's probes: ``probe()`` returns ``loss()`` evaluated under
    :func:`probe_context`. HiDLR calls :meth:`begin_step` once per step (before any probe call),
    which sets the step's common-random-number seed.

    Args:
        model: the module whose modes and running statistics the rules manage (None: only the
            random-number rule applies).
        eval_mode: switch dropout off for the probe (module docstring). False keeps every module's
            mode, for models whose loss is stochastic by design (MC dropout, Bayesian layers); the
            common random numbers then make it a fixed function of the weights within a step.
        seed: None: each step's seed is derived from ``torch.initial_seed()`` (read now) and the
            step number; an int: derived from it and the step number. ``fixed_seed`` instead uses one
            seed in every call (for a probe built anew each step).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        eval_mode: bool = True,
        seed: int | None = None,
        fixed_seed: int | None = None,
    ) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
        if seed is not None and fixed_seed is not None:
            raise ValueError("pass seed or fixed_seed, not both")
        for name, value in (("seed", seed), ("fixed_seed", fixed_seed)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{name} must be an int or None, got {value!r}")
        self.model, self.eval_mode = model, bool(eval_mode)
        self._base_seed = int(torch.initial_seed() if seed is None else seed)
        self._fixed_seed = fixed_seed
        self._step_seed = fixed_seed if fixed_seed is not None else self._mix(0)
        self._devices: tuple[torch.device, ...] = ()

    def _mix(self, step: int) -> int:
        return (self._base_seed * _SEED_MIX + (step + 1) * 0xBF58476D1CE4E5B9) % (2**63 - 1)

    def begin_step(self, step: int, closure: Callable[[], Any] | None = None) -> None:
        """Called by HiDLR before the probes of step ``step`` (``closure``: the one ``step`` got)."""
        if self._fixed_seed is None:
            self._step_seed = self._mix(step)

    def loss(self) -> Tensor:
        """The loss at the current weights (subclasses)."""
        raise NotImplementedError

    def __call__(self) -> Tensor:
        with (
            torch.no_grad(),
            probe_context(self.model, eval_mode=self.eval_mode, seed=self._step_seed, devices=self._devices),
        ):
            return self.loss()


class BatchProbe(Probe):
    """The loss closure ``loss_fn()`` (for example the loss of ``model`` on a held-aside batch,
    ``lambda: loss_fn(model(x), y)``) under the probe rules; other arguments as :class:`Probe`."""

    def __init__(self, loss_fn: Callable[[], Any], model: nn.Module | None = None, **rules: Any) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        super().__init__(model, **rules)
        self.loss_fn = loss_fn

    def loss(self) -> Tensor:
        return self.loss_fn()


def loss_of_output(output: Any) -> Tensor:
    """The scalar loss in a model's output: ``output.loss`` (Hugging Face), ``output["loss"]``, the
    first element of a tuple, or the output itself when it is a one-element tensor."""
    value = getattr(output, "loss", None)
    if value is None and isinstance(output, Mapping):
        value = output.get("loss")
    if value is None and isinstance(output, (tuple, list)) and output:
        value = output[0]
    if value is None:
        value = output
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise TypeError(
            f"the model's output holds no scalar loss (got {type(output).__name__}); give the "
            "probe a loss= function of the output, or pass labels so that the model returns .loss"
        )
    return value


class LatestBatchProbe(Probe):
    """Re-runs ``model``'s latest training forward call (same positional and keyword inputs) and
    returns ``loss(output)`` (default :func:`loss_of_output`).

    A forward pre-hook on ``model`` records the inputs of every call made with gradients enabled
    in training mode (the framework's training forward); probe calls, evaluation and
    ``no_grad`` calls are not recorded. The inputs are kept by reference until the next training
    forward. :meth:`close` removes the hook. Other arguments as :class:`Probe`.
    """

    def __init__(self, model: nn.Module, loss: Callable[[Any], Tensor] | None = None, **rules: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be callable or None, got {type(loss).__name__}")
        super().__init__(model, **rules)
        self.loss_fn = loss if loss is not None else loss_of_output
        self.inputs: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if module.training and torch.is_grad_enabled():
            self.inputs = (args, dict(kwargs))

    def loss(self) -> Tensor:
        if self.inputs is None:
            raise RuntimeError("LatestBatchProbe has seen no training forward call of its model yet")
        args, kwargs = self.inputs
        return self.loss_fn(self.model(*args, **kwargs))

    def close(self) -> None:
        """Remove the forward hook and drop the recorded inputs."""
        self._handle.remove()
        self.inputs = None


def batch_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested tuples, lists and mappings) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: batch_to(v, device) for k, v in batch.items()})  # type: ignore[call-arg]
    if isinstance(batch, (tuple, list)):
        moved = [batch_to(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def output_of(model: nn.Module, batch: Any) -> Any:
    """``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple or list, else ``model(batch)``."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


class BatchStream:
    """Batches drawn in turn from an iterable (a ``DataLoader``), restarted when it runs out.

    :meth:`draw` returns the next batch; an iterable that yields nothing, even after a restart,
    raises ValueError."""

    def __init__(self, batches: Iterable[Any]) -> None:
        if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
            raise TypeError(f"batches must be an iterable of batches (e.g. a DataLoader), got {type(batches).__name__}")
        self.batches = batches
        self._it: Iterator[Any] | None = None

    def draw(self) -> Any:
        for _ in range(2):
            if self._it is None:
                self._it = iter(self.batches)
            try:
                return next(self._it)
            except StopIteration:
                self._it = None
        raise ValueError("batches yielded no batch: the probe has no data to evaluate the loss on")


class DataProbe(Probe):
    """The loss on batches of its own: each refresh step draws the next batch of ``batches`` (for
    example a ``DataLoader`` over the training set with its own shuffling, or over held-out data;
    restarted when it runs out), and every probe call of that step sees the same batch.

    A batch other than the gradient's gives an unbiased slope along the update (the gradient's own
    batch favours larger rates, see ``docs/guide/probes.md``). ``loss(model, batch)`` returns the
    scalar loss; the default is :func:`loss_of_output` of :func:`output_of` (Hugging Face models with
    labels in the batch). Tensors in the batch are moved to the device of the model's first
    parameter. Other arguments as :class:`Probe`.
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Iterable[Any],
        loss: Callable[[nn.Module, Any], Any] | None = None,
        **rules: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be callable or None, got {type(loss).__name__}")
        super().__init__(model, **rules)
        self.stream = BatchStream(batches)
        self.loss_fn = loss
        self.batch: Any = None
        self._stale = True

    def begin_step(self, step: int, closure: Callable[[], Any] | None = None) -> None:
        super().begin_step(step, closure)
        self._stale = True  # the next call draws (only refresh steps call the probe)

    def loss(self) -> Tensor:
        if self._stale:
            param = next(self.model.parameters(), None)
            raw = self.stream.draw()
            self.batch = raw if param is None else batch_to(raw, param.device)
            self._stale = False
        if self.loss_fn is not None:
            return self.loss_fn(self.model, self.batch)
        return loss_of_output(output_of(self.model, self.batch))

    def close(self) -> None:
        """Drop the current batch and the iterator over ``batches``."""
        self.batch, self.stream._it, self._stale = None, None, True


class ClosureProbe(Probe):
    """Re-evaluates the closure passed to ``HiDLR.step(closure)``, as ``torch.optim.LBFGS`` does: with
    gradients enabled (closures call ``backward``), each parameter's ``.grad`` set aside before the
    call and put back after it, so the step's gradients survive. Costs a forward and a backward per
    probe (a :class:`BatchProbe` costs a forward). Without a model only the random-number rule
    applies: dropout stays on (the same masks in every call of a step) and BatchNorm running
    statistics see the probe batches."""

    def __init__(self, params: Iterable[Tensor], model: nn.Module | None = None, **rules: Any) -> None:
        super().__init__(model, **rules)
        self.params = list(params)
        self._devices = tuple(sorted({p.device for p in self.params}, key=str))
        self.closure: Callable[[], Any] | None = None

    def begin_step(self, step: int, closure: Callable[[], Any] | None = None) -> None:
        super().begin_step(step, closure)
        self.closure = closure

    def loss(self) -> Tensor:
        if self.closure is None:
            raise RuntimeError("ClosureProbe needs the closure of the current step (HiDLR.step(closure))")
        saved = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None  # a closure that zeroes grads in place must not touch the step's gradients
        try:
            with torch.enable_grad():
                value = self.closure()
        finally:
            for p, g in zip(self.params, saved):
                p.grad = g
        if value is None:
            raise TypeError("the closure returned None: HiDLR probes the closure's loss, so it must return it")
        return value.detach() if isinstance(value, Tensor) else value


def probe_for_step(
    optimizer: Any, probe: Callable[[], Any] | None, closure: Callable[[], Any] | None
) -> Callable[[], Any] | None:
    """The probe a HiDLR step uses: ``probe`` if given, else the optimizer's ``default_probe``, else
    on refresh steps a :class:`ClosureProbe` of ``closure`` (None when there is none of these).
    :class:`Probe` instances get :meth:`Probe.begin_step` with the step number and the closure."""
    chosen = probe if probe is not None else optimizer.default_probe
    if chosen is None and closure is not None and optimizer.is_refresh_step():
        chosen = ClosureProbe([p for g in optimizer.param_groups for p in g["params"]], seed=optimizer.seed)
    if isinstance(chosen, Probe):
        chosen.begin_step(optimizer.step_count, closure)
    return chosen
