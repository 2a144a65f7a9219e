"""What HiDLR wraps and how it is copied: a base optimizer that maximizes, groups that differ in
``maximize``, LBFGS, and ``copy.deepcopy`` / pickling of a running optimizer (with and without a
scheduler holding its ``step``). Cases of the ``step`` area, on :class:`cases_step.Rig`."""

from __future__ import annotations

import copy

import torch
from cases_step import Rig
from harness import Case, Outcome, refused, short
from torch import nn

from hidlr import HiDLR


def _maximize(mixed: bool) -> Outcome:
    """A base optimizer that maximizes: its probe returns the objective. Every group maximizing must
    match minimizing the negated objective bitwise; groups that differ must be refused."""
    model = nn.Linear(3, 1).double()
    if mixed:
        groups = [{"params": [model.weight], "maximize": True, "name": "w"}, {"params": [model.bias], "name": "b"}]
        try:
            HiDLR(torch.optim.Adam(groups, lr=1e-2))
        except Exception as err:
            return refused(err, ["maximize", "w", "b"])
        return Outcome("silently-wrong", "accepted")
    x = torch.randn(32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = x.sum(1, keepdim=True)
    runs = []
    for maximize in (True, False):
        torch.manual_seed(0)
        net = nn.Linear(3, 1).double()
        opt = HiDLR(torch.optim.Adam(net.parameters(), lr=1e-3, maximize=maximize))
        sign = -1.0 if maximize else 1.0

        def value(net: nn.Module = net, sign: float = sign) -> torch.Tensor:
            return sign * nn.functional.mse_loss(net(x), y)

        for _ in range(8):
            opt.zero_grad()
            value().backward()
            opt.step(probe=value)
        runs.append((net, opt))
    (up, opt_up), (down, opt_down) = runs
    if opt_up.lrs != opt_down.lrs or not all(torch.equal(a, b) for a, b in zip(up.parameters(), down.parameters())):
        return Outcome("silently-wrong", f"rates {opt_up.lrs} maximizing, {opt_down.lrs} minimizing the negation")
    if opt_up.lrs == [1e-3]:
        return Outcome("silently-wrong", "the rates never moved")
    return Outcome("ok", f"the same run as minimizing the negation (rates {opt_up.lrs[0]:.3g})")


def _lbfgs() -> Outcome:
    try:
        HiDLR(torch.optim.LBFGS(nn.Linear(3, 1).parameters()))
    except Exception as err:
        return refused(err, ["LBFGS"])
    return Outcome("silently-wrong", "accepted")


def _copied(how: str) -> Outcome:
    """A running HiDLR copied (``copy.deepcopy``) or pickled with its net continues like the original."""
    import pickle

    rig = Rig()
    if how.endswith("scheduler"):  # the scheduler wraps opt.step with a call of this optimizer
        torch.optim.lr_scheduler.StepLR(rig.opt, step_size=50)
    twin = copy.deepcopy(rig) if how.startswith("deepcopy") else pickle.loads(pickle.dumps(rig))
    if how.endswith("scheduler"):
        before = rig.weights()
        twin.normal_step()
        if not all(torch.equal(a, b) for a, b in zip(before, rig.weights())):
            return Outcome("silently-wrong", "stepping the copy moved the original")
        return Outcome("ok", "the copy steps itself only")
    try:
        for r in (rig, twin):
            for _ in range(4):
                r.normal_step()
    except Exception as err:
        return Outcome("loses-data", f"the copy cannot step: {short(err)}")
    if twin.opt.lrs != rig.opt.lrs or not all(torch.equal(a, b) for a, b in zip(rig.weights(), twin.weights())):
        return Outcome("loses-data", "the copy does not continue like the original")
    return Outcome("ok", "continues bitwise")


def cases() -> list[Case]:
    out = [
        Case("step", "base maximizes (maximize=True)", lambda: _maximize(False), quick=True),
        Case("step", "groups differ in maximize", lambda: _maximize(True)),
        Case("step", "LBFGS as the base", _lbfgs),
    ]
    for how in ("deepcopy", "pickle", "deepcopy with a scheduler", "pickle with a scheduler"):
        out.append(Case("step", f"{how} of a running optimizer", lambda h=how: _copied(h), quick=how == "pickle"))
    return out
