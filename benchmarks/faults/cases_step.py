"""Faults inside ``HiDLR.step``: probes that raise or return garbage, non-finite gradients (dense and
sparse), bad rates, duplicated parameters, parameters without gradients, frozen groups, retried
steps. Each case checks the error and then that nothing was lost: weights and optimizer state as
before (bitwise), or as ``docs/guide/faults.md`` promises, and a following normal step and a
``state_dict`` round trip work."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from harness import Case, Outcome, refused, short, tensors_equal
from torch import nn

from hidlr import HiDLR, ProbeError


class Rig:
    """A float64 two-layer net with two named param groups under ``HiDLR(Adam)``, fixed data."""

    def __init__(self, warm_steps: int = 2, base: str = "adam", **options: Any) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        self.x, self.y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
        groups = [
            {"params": list(self.model[0].parameters()), "name": "first"},
            {"params": list(self.model[2].parameters()), "name": "last"},
        ]
        make = {"adam": torch.optim.Adam, "sgd": lambda g, lr: torch.optim.SGD(g, lr=lr, momentum=0.9)}[base]
        self.options = {"every": 2, **options}
        self.base = base
        self.opt = HiDLR(make(groups, lr=1e-2), **self.options)
        for _ in range(warm_steps):
            self.normal_step()

    def loss(self) -> torch.Tensor:
        return nn.functional.mse_loss(self.model(self.x), self.y)

    def backward(self) -> None:
        self.opt.zero_grad()
        self.loss().backward()

    def normal_step(self) -> None:
        self.backward()
        self.opt.step(probe=self.loss)

    def to_refresh(self, refresh: bool = True) -> None:
        """Step until the next step is (or is not) a refresh step."""
        while self.opt.is_refresh_step() != refresh:
            self.normal_step()

    def weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model.parameters()]

    def snapshot(self) -> tuple[list[torch.Tensor], dict[str, Any]]:
        return self.weights(), copy.deepcopy(self.opt.state_dict())

    def diff(self, snap: tuple[list[torch.Tensor], dict[str, Any]]) -> str | None:
        """None when weights and optimizer state are bitwise as in ``snap``, else what differs."""
        w, sd = snap
        if not all(torch.equal(a, b) for a, b in zip(self.weights(), w)):
            return "weights changed"
        if not tensors_equal(self.opt.state_dict(), sd):
            return "optimizer state changed"
        return None

    def usable(self) -> str | None:
        """None when two more normal steps leave finite weights and the state dict loads into a fresh
        optimizer over a copy of the net, else what failed."""
        try:
            for _ in range(2):
                self.normal_step()
            if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                return "weights not finite after further steps"
            if not all(math.isfinite(r) and r >= 0 for r in self.opt.lrs):
                return f"rates {self.opt.lrs} after further steps"
            if not all(math.isfinite(v) for v in self.opt.influence):
                return f"influence scores {self.opt.influence} after further steps"
            other = Rig(warm_steps=0, base=self.base, **self.options)
            other.model.load_state_dict(self.model.state_dict())
            other.opt.load_state_dict(self.opt.state_dict())
            other.normal_step()
        except Exception as err:
            return f"not usable afterwards: {short(err)}"
        return None


def _refused_unchanged(
    rig: Rig, action: Callable[[], Any], words: list[str], types: tuple[type[BaseException], ...]
) -> Outcome:
    snap = rig.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            action()
        except Exception as err:
            out = refused(err, words, types)
            lost = rig.diff(snap) or rig.usable()
            return Outcome("loses-data", f"{out.message} | {lost}") if lost else out
    return Outcome("silently-wrong", "accepted")


def _flaky(rig: Rig, fail_at: int, result: Callable[[], Any]) -> Callable[[], Any]:
    calls = []

    def probe() -> Any:
        calls.append(1)
        return result() if len(calls) == fail_at else rig.loss()

    return probe


def _raise() -> Any:
    raise RuntimeError("data loader ran dry")


# what a probe returns, and the error class and words expected
PROBE_RETURNS: dict[str, tuple[Callable[[], Any], type[BaseException], list[str]]] = {
    "raises": (_raise, RuntimeError, ["ran dry"]),
    "None": (lambda: None, ProbeError, ["probe", "NoneType"]),
    "str": (lambda: "0.5", ProbeError, ["probe", "str"]),
    "NaN": (lambda: torch.tensor(math.nan), ProbeError, ["probe"]),
    "inf": (lambda: torch.tensor(math.inf), ProbeError, ["probe"]),
    "2-element": (lambda: torch.ones(2), ProbeError, ["probe", "shape"]),
    "bool": (lambda: True, ProbeError, ["probe", "bool"]),
    "complex-tensor": (lambda: torch.tensor(1 + 1j), ProbeError, ["probe", "real"]),
    "list": (lambda: [0.5], ProbeError, ["probe", "list"]),
}


# optimizer configurations the probe faults run under (keyword arguments of Rig)
CONFIGS: dict[str, dict[str, Any]] = {
    "Adam": {},
    "Adam full": {"mode": "full"},
    "Adam random design": {"design": "random"},
    "SGD momentum": {"base": "sgd"},
}


def _probe_first_call(kind: str, config: str = "Adam") -> Outcome:
    """The probe's first call (at the unmoved weights) fails: nothing may change, whatever options."""
    rig = Rig(**CONFIGS[config])
    rig.to_refresh()
    rig.backward()
    result, err_type, words = PROBE_RETURNS[kind]
    return _refused_unchanged(rig, lambda: rig.opt.step(probe=_flaky(rig, 1, result)), words, (err_type,))


def _probe_mid_refresh_rollback(kind: str, config: str = "Adam") -> Outcome:
    """rollback=True: a probe failing mid-refresh leaves weights and state bitwise as before."""
    rig = Rig(rollback=True, **CONFIGS[config])
    rig.to_refresh()
    rig.backward()
    result, err_type, words = PROBE_RETURNS[kind]
    if kind in ("NaN", "inf"):  # documented: a non-finite probe loss mid-refresh skips that group
        return _nonfinite_mid_refresh(rig, result)
    return _refused_unchanged(rig, lambda: rig.opt.step(probe=_flaky(rig, 3, result)), words, (err_type,))


def _nonfinite_mid_refresh(rig: Rig, result: Callable[[], Any]) -> Outcome:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rig.opt.step(probe=_flaky(rig, 3, result))
    if not any("non-finite probe loss" in str(w.message) for w in caught):
        return Outcome("silently-wrong", "a non-finite probe loss mid-refresh passed without a warning")
    lost = rig.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "warned, group skipped, rates kept")


def _probe_mid_refresh_complete(kind: str, config: str = "Adam") -> Outcome:
    """rollback=False (default): the step is completed at the current rates (compared with a bare Adam
    step at those rates), counted, the next step refreshes, and a retry with the same gradients does
    nothing (it warns)."""
    rig = Rig(**CONFIGS[config])
    rig.to_refresh()
    rig.backward()
    result, err_type, words = PROBE_RETURNS[kind]
    if kind in ("NaN", "inf"):
        return _nonfinite_mid_refresh(rig, result)
    ref_model = copy.deepcopy(rig.model)
    base = rig.opt.optimizer
    ref = type(base)(
        [{"params": list(ref_model[0].parameters())}, {"params": list(ref_model[2].parameters())}], **base.defaults
    )
    ref.load_state_dict(copy.deepcopy(rig.opt.optimizer.state_dict()))
    for g, r in zip(ref.param_groups, rig.opt.lrs):
        g["lr"] = r
    for p, q in zip(ref_model.parameters(), rig.model.parameters()):
        p.grad = q.grad.clone()
    ref.step()
    t = rig.opt.step_count
    try:
        rig.opt.step(probe=_flaky(rig, 3, result))
    except Exception as err:
        out = refused(err, words, (err_type,))
    else:
        return Outcome("silently-wrong", "accepted")
    gap = max(float((a - b).abs().max()) for a, b in zip(rig.model.parameters(), ref_model.parameters()))
    if gap > 1e-12 or rig.opt.step_count != t + 1 or not rig.opt.is_refresh_step():
        return Outcome("loses-data", f"{out.message} | step not completed as documented (gap {gap:.3g})")
    snap = rig.snapshot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rig.opt.step(probe=rig.loss)  # the retry, same gradients
    if rig.diff(snap) or not any("already applied" in str(w.message) for w in caught):
        return Outcome("loses-data", f"{out.message} | the retry with the same gradients applied them again")
    lost = rig.usable()
    return Outcome("loses-data", f"{out.message} | {lost}") if lost else out


def _probe_requires_grad() -> Outcome:
    rig = Rig()
    rig.to_refresh()
    rig.backward()

    def probe() -> torch.Tensor:
        with torch.enable_grad():
            return rig.loss()

    rig.opt.step(probe=probe)
    lost = rig.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "a probe loss that requires grad is detached")


def _bad_grad(value: float, refresh: bool, sparse: bool = False) -> Outcome:
    if sparse:
        return _sparse(value)
    rig = Rig()
    rig.to_refresh(refresh)
    rig.backward()
    rig.model[2].weight.grad[0, 0] = value
    return _refused_unchanged(
        rig, lambda: rig.opt.step(probe=rig.loss), ["non-finite", "gradient", "last"], (FloatingPointError,)
    )


def _sparse(value: float | None) -> Outcome:
    torch.manual_seed(0)
    emb = nn.Embedding(10, 3, sparse=True).double()
    opt = HiDLR(torch.optim.SGD(emb.parameters(), lr=0.1), every=1)
    idx = torch.tensor([1, 2, 3])

    def loss() -> torch.Tensor:
        return emb(idx).pow(2).sum()

    opt.zero_grad()
    loss().backward()
    if value is None:
        before = emb.weight.detach().clone()
        opt.step(probe=loss)
        moved = not torch.equal(before, emb.weight) and bool(torch.isfinite(emb.weight).all())
        return Outcome("ok", "sparse gradients stepped") if moved else Outcome("silently-wrong", "did not move")
    g = emb.weight.grad.coalesce()
    vals = g.values().clone()
    vals[0, 0] = value
    emb.weight.grad = torch.sparse_coo_tensor(g.indices(), vals, g.shape)
    before = emb.weight.detach().clone()
    sd = copy.deepcopy(opt.state_dict())
    try:
        opt.step(probe=loss)
    except Exception as err:
        out = refused(err, ["non-finite", "gradient"], (FloatingPointError,))
        if not torch.equal(before, emb.weight) or not tensors_equal(sd, opt.state_dict()):
            return Outcome("loses-data", out.message)
        return out
    return Outcome("silently-wrong", "accepted")


def _bad_rate(how: str) -> Outcome:
    rig = Rig()
    rig.to_refresh(how.endswith("refresh"))
    if how.startswith("scheduler"):
        sched = torch.optim.lr_scheduler.LambdaLR(rig.opt, lambda e: 1.0 if e == 0 else -1.0)
        sched.step()
    else:
        rig.opt.param_groups[1]["lr"] = {"negative": -1e-2, "nan": math.nan, "inf": math.inf}[how.split("-")[0]]
    rig.backward()
    snap = rig.snapshot()
    try:
        rig.opt.step(probe=rig.loss)
    except Exception as err:
        out = refused(err, ["rate"], (ValueError,))
        lost = rig.diff(snap)
        if lost:
            return Outcome("loses-data", f"{out.message} | {lost}")
        for g in rig.opt.param_groups:
            g["lr"] = 1e-2
            g["initial_lr"] = 1e-2
        lost = rig.usable()
        return Outcome("loses-data", f"{out.message} | {lost}") if lost else out
    return Outcome("silently-wrong", f"accepted; rates {rig.opt.lrs}")


def _duplicate(where: str) -> Outcome:
    model = nn.Linear(3, 1)
    w, b = model.weight, model.bias
    if where == "add_param_group":
        opt = HiDLR(torch.optim.SGD([{"params": [w]}], lr=0.1))

        def action() -> None:
            opt.add_param_group({"params": [b, w]})

        try:
            action()
        except Exception as err:
            out = refused(err, ["parameter", "group"])
            if len(opt.param_groups) != 1 or len(opt.lrs) != 1:
                return Outcome("loses-data", f"{out.message} | the group was added anyway")
            return out
        return Outcome("silently-wrong", "accepted")
    groups = [{"params": [w, w, b]}] if where == "one group" else [{"params": [w, b]}, {"params": [w]}]
    try:
        HiDLR(torch.optim.SGD(groups, lr=0.1))
    except Exception as err:
        return refused(err, ["parameter", "twice" if where == "one group" else "group"])
    return Outcome("silently-wrong", "accepted")


def _no_grad_group(frozen: bool) -> Outcome:
    rig = Rig(warm_steps=0, every=1)
    if frozen:
        rig.opt.param_groups[0]["lr"] = 0.0
        rig.opt.optimizer.param_groups[0]["lr"] = 0.0
        rig.opt = HiDLR(rig.opt.optimizer, every=1)
    before = [p.detach().clone() for p in rig.model[0].parameters()]
    other = rig.model[2].weight.detach().clone()
    for _ in range(3):
        rig.opt.zero_grad()
        rig.loss().backward()
        if not frozen:
            for p in rig.model[0].parameters():
                p.grad = None
        rig.opt.step(probe=rig.loss)
    still = all(torch.equal(a, p) for a, p in zip(before, rig.model[0].parameters()))
    moved = not torch.equal(other, rig.model[2].weight)
    if not still or not moved:
        return Outcome("silently-wrong", "the group without gradients / frozen moved, or the other did not")
    lost = rig.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "skipped as documented")


def _missing_probe() -> Outcome:
    rig = Rig()
    rig.to_refresh()
    rig.backward()
    return _refused_unchanged(rig, lambda: rig.opt.step(), ["probe"], (ValueError,))


def _retry_after_refusal() -> Outcome:
    """A step refused for a NaN gradient, retried with good gradients: exactly one step is taken."""
    rig = Rig()
    rig.to_refresh(False)
    rig.backward()
    rig.model[2].weight.grad[0, 0] = math.nan
    t = rig.opt.step_count
    try:
        rig.opt.step(probe=rig.loss)
    except FloatingPointError:
        pass
    rig.backward()
    rig.opt.step(probe=rig.loss)
    if rig.opt.step_count != t + 1:
        return Outcome("silently-wrong", f"step count {rig.opt.step_count}, expected {t + 1}")
    lost = rig.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "one step taken")


def _closure_only() -> Outcome:
    rig = Rig()
    rig.to_refresh()

    def closure() -> torch.Tensor:
        rig.opt.zero_grad()
        loss = rig.loss()
        loss.backward()
        return loss

    rig.opt.step(closure)
    lost = rig.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "the closure served as the probe")


def _closure_raises() -> Outcome:
    rig = Rig()
    rig.to_refresh()
    rig.backward()

    def closure() -> torch.Tensor:
        raise RuntimeError("out of memory in the closure")

    return _refused_unchanged(rig, lambda: rig.opt.step(closure), ["closure"], (RuntimeError,))


def cases() -> list[Case]:
    out: list[Case] = []
    for config in CONFIGS:
        for kind in PROBE_RETURNS:
            first = config == "Adam"
            out += [
                Case(
                    "step",
                    f"{config}: probe {kind} at its first call",
                    lambda k=kind, c=config: _probe_first_call(k, c),
                    quick=first,
                ),
                Case(
                    "step",
                    f"{config}: probe {kind} mid-refresh, rollback=True",
                    lambda k=kind, c=config: _probe_mid_refresh_rollback(k, c),
                    quick=first and kind in ("raises", "None"),
                ),
                Case(
                    "step",
                    f"{config}: probe {kind} mid-refresh, rollback=False",
                    lambda k=kind, c=config: _probe_mid_refresh_complete(k, c),
                    quick=first and kind in ("raises", "None"),
                ),
            ]
    out.append(Case("step", "probe loss requires grad", _probe_requires_grad))
    for value in (math.nan, math.inf, -math.inf):
        for refresh in (True, False):
            step = "refresh" if refresh else "plain"
            out.append(
                Case(
                    "step",
                    f"{value} dense gradient, {step} step",
                    lambda v=value, r=refresh: _bad_grad(v, r),
                    quick=True,
                )
            )
        out.append(Case("step", f"{value} sparse gradient", lambda v=value: _sparse(v), quick=True))
    out.append(Case("step", "finite sparse gradient", lambda: _sparse(None)))
    for how in ("negative-refresh", "negative-plain", "nan-plain", "inf-refresh", "scheduler-negative-plain"):
        out.append(Case("step", f"rate {how}", lambda h=how: _bad_rate(h), quick=True))
    for where in ("one group", "two groups", "add_param_group"):
        out.append(Case("step", f"same parameter in {where}", lambda w=where: _duplicate(w), quick=True))
    out.append(Case("step", "a group without gradients", lambda: _no_grad_group(False)))
    out.append(Case("step", "a frozen group (lr=0)", lambda: _no_grad_group(True)))
    out.append(Case("step", "refresh step without a probe", _missing_probe, quick=True))
    out.append(Case("step", "retry after a refused step", _retry_after_refusal))
    out.append(Case("step", "closure only (framework style)", _closure_only))
    out.append(Case("step", "closure raises", _closure_raises, quick=True))
    return out
