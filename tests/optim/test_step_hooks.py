"""HiDLR's step behind torch's hook wrapper only when something uses it: hooks and profiling as
torch's own optimizers give them."""

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.profiler import ProfilerActivity, profile

from hidlr import HiDLR
from hidlr.optim import step_hooks


def _setup() -> tuple[nn.Linear, HiDLR, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = HiDLR(torch.optim.SGD(model.parameters(), lr=0.1), every=1000)
    x = torch.randn(8, 3)
    return model, opt, x


def _probe(model: nn.Linear, x: torch.Tensor):
    return lambda: model(x).pow(2).mean()


def _backward(model: nn.Linear, x: torch.Tensor) -> None:
    model.zero_grad()
    model(x).pow(2).mean().backward()


def test_step_is_marked_hooked_so_torch_leaves_it():
    assert getattr(HiDLR.step, "hooked", False)
    _setup()  # building one more does not wrap it again
    assert HiDLR.step.__wrapped__.__name__ == "step"


def test_instance_pre_and_post_hooks_run_in_order_and_a_pre_hook_may_replace_arguments():
    model, opt, x = _setup()
    calls = []
    seen_probe = []

    def pre(o, args, kwargs):
        calls.append("pre")
        return args, {**kwargs, "probe": lambda: seen_probe.append(1) or model(x).pow(2).mean()}

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    _backward(model, x)
    opt.step()  # the refresh's probe comes from the pre-hook
    assert calls == ["pre", "post"] and seen_probe
    _backward(model, x)
    opt.step()
    assert calls == ["pre", "post", "pre", "post"]


def test_global_hooks_run():
    model, opt, x = _setup()
    calls = []
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: calls.append(type(o).__name__)),
        register_optimizer_step_post_hook(lambda o, a, k: calls.append("post")),
    ]
    try:
        _backward(model, x)
        opt.step(probe=lambda: model(x).pow(2).mean())
    finally:
        for h in handles:
            h.remove()
    # HiDLR's own step and the base SGD's inside it, each with pre and post hooks
    assert calls == ["HiDLR", "SGD", "post", "post"]
    assert not step_hooks._global_hooks()


def test_profiler_sees_the_step_range():
    model, opt, x = _setup()
    _backward(model, x)
    opt.step(probe=lambda: model(x).pow(2).mean())
    _backward(model, x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.step()
    names = {e.name for e in prof.events()}
    assert "Optimizer.step#HiDLR.step" in names and "Optimizer.step#SGD.step" in names


def test_plain_step_moves_the_weights_as_the_hooked_step_does():
    results = []
    for hooked in (False, True):
        model, opt, x = _setup()
        if hooked:
            opt.register_step_post_hook(lambda *args: None)
        probe = _probe(model, x)
        for _ in range(3):
            _backward(model, x)
            opt.step(probe=probe)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


class _SGDWithoutNoGrad(torch.optim.Optimizer):
    """A hand-written optimizer whose step does not turn autograd off."""

    def __init__(self, params, lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_a_base_step_without_no_grad_runs_on_plain_steps_too():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = HiDLR(_SGDWithoutNoGrad(model.parameters()), every=1000)
    x = torch.randn(8, 3)
    for _ in range(3):  # a refresh, then plain steps
        _backward(model, x)
        opt.step(probe=lambda: model(x).pow(2).mean())
    assert opt.step_count == 3 and torch.is_grad_enabled()
