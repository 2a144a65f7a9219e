"""One Hi-DLR run on a benchmark workload, checked against exact curvature and look-ahead runs.

At every refresh: the probe's fitted ``b_k``, ``a_k = A_kk`` against the exact values along the
same directions (``hidlr.curvature.along`` in float64, same batch), and the exact one-step Newton
rates. At a few checkpoints: short look-ahead runs of the base optimizer from a copy of the state
(same data stream) at uniform rates on a log grid and at multiples of Hi-DLR's current rates; the
best of each over the next ``--ahead`` steps (by validation loss and by training loss on a fixed
sample of the training stream), and the exact one-group Newton rate along the update that each
uniform rate leads to after those steps (edge of stability: does it track the rate?).

    .venv/bin/python benchmarks/diagnosis/trajectory.py digits-cnn-bn --seed 0 \
        --out benchmarks/diagnosis/results/trajectory-digits-cnn-bn.json
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import torch

from hidlr import HiDLR, curvature
from hidlr.bench.lr.methods import base_optimizer
from hidlr.bench.lr.runner import make_probe
from hidlr.bench.lr.workloads import get as get_workloads

UNIFORM = tuple(10 ** (e / 2) for e in range(-10, 1))     # 1e-5 .. 1 in half decades
MULTIPLES = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0, 16.0)


def _flat_params(groups) -> list[torch.Tensor]:
    return [p for g in groups for p in g["params"]]


def _exact_at(task, groups, w_t, directions, probe) -> curvature.Directional:
    """Exact b, A at weights ``w_t`` along ``directions`` on the probe's batch, in float64."""
    params = _flat_params(groups)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, w in zip(params, w_t):
            p.copy_(w)
    try:
        with curvature.in_float64(task.model):
            return curvature.along(probe, [g["params"] for g in groups], directions)
    finally:
        with torch.no_grad():
            for p, w in zip(params, saved):
                p.copy_(w)


def _train_sample(task, seed: int, n: int = 8) -> list[Any]:
    gen = torch.Generator().manual_seed(10_000 + seed)
    return [task.batch(gen) for _ in range(n)]


def _losses(task, sample) -> tuple[float, float]:
    task.model.eval()
    with torch.no_grad():
        val = task.evaluate(task.model)["loss"]
        train = sum(float(task.loss(task.model, b)) for b in sample) / len(sample)
    task.model.train()
    return val, train


def _lookahead(wl, task, base, gen_state, rates: list[float], ahead: int, sample, seed: int) -> dict[str, Any]:
    """Train copies of (model, base optimizer) for ``ahead`` steps at per-group ``rates``."""
    model0, opt0 = task.model, base
    clone_model, clone_opt = copy.deepcopy((model0, opt0))
    task.model = clone_model
    gen = torch.Generator()
    gen.set_state(gen_state)
    out: dict[str, Any] = {"status": "ok"}
    try:
        for g, r in zip(clone_opt.param_groups, rates):
            g["lr"] = r
        for _ in range(ahead):
            batch = task.batch(gen)
            clone_opt.zero_grad()
            loss = task.loss(task.model, batch)
            if not torch.isfinite(loss):
                return {"status": "diverged"}
            loss.backward()
            clone_opt.step()
        out["val"], out["train"] = _losses(task, sample)
        # the exact one-group Newton rate along the next update (direction at unit rate)
        batch = task.batch(gen)
        clone_opt.zero_grad()
        task.loss(task.model, batch).backward()
        params = _flat_params(clone_opt.param_groups)
        before = [p.detach().clone() for p in params]
        clone_opt.step()
        dirs = [[(b - p.detach()) / r for b, p in zip(before[i:i + len(g["params"])], g["params"])]
                for i, g, r in _offsets(clone_opt.param_groups, rates)]
        with torch.no_grad():
            for p, b in zip(params, before):
                p.copy_(b)
        probe = make_probe(task, batch, "same", torch.Generator(), crn_seed=seed)
        with curvature.in_float64(task.model):
            ex = curvature.along(probe, [params], [[d for ds in dirs for d in ds]])
        out["newton_one"] = ex.newton_one
    finally:
        task.model = model0
    return out


def _offsets(groups, rates):
    i = 0
    for g, r in zip(groups, rates):
        yield i, g, r
        i += len(g["params"])


def run(wl_name: str, seed: int, ahead: int, checkpoints: list[int], lr0: float | None) -> dict[str, Any]:
    torch.set_num_threads(1)
    wl = get_workloads([wl_name])[0]
    torch.manual_seed(seed)
    task = wl.build(seed)
    base = base_optimizer(wl, task.groups, lr0 or wl.default_lr)
    opt = HiDLR(base)
    gen = torch.Generator().manual_seed(seed * 7919 + 1)
    sample = _train_sample(task, seed)
    refreshes, looks, trace = [], [], {"step": [], "lrs": [], "val": []}
    for step in range(1, wl.steps + 1):
        if step - 1 in checkpoints:
            state = gen.get_state()
            cur = opt.lrs
            look = {"step": step - 1, "hidlr_lrs": cur, "uniform": {}, "multiple": {}}
            for r in UNIFORM:
                look["uniform"][r] = _lookahead(wl, task, base, state, [r] * len(cur), ahead, sample, seed)
            for m in MULTIPLES:
                look["multiple"][m] = _lookahead(wl, task, base, state, [m * c for c in cur], ahead, sample, seed)
            looks.append(look)
        batch = task.batch(gen)
        opt.zero_grad(set_to_none=True)
        task.loss(task.model, batch).backward()
        probe = make_probe(task, batch, "same", torch.Generator(), crn_seed=seed * 100_003 + step)
        refresh = opt.is_refresh_step()
        w_t = [p.detach().clone() for p in _flat_params(base.param_groups)] if refresh else None
        opt.step(probe=probe)
        if refresh and opt.history and opt.history[-1]["step"] == step - 1:
            rec = opt.history[-1]
            new = opt.lrs
            dirs, i = [], 0
            for k, g in enumerate(base.param_groups):
                n = len(g["params"])
                r = new[k] if new[k] > 0 else 1.0
                dirs.append([(w - p.detach()) / r for w, p in zip(w_t[i:i + n], g["params"])])
                i += n
            ex = _exact_at(task, base.param_groups, w_t, dirs, probe)
            refreshes.append({"step": step - 1, "rates": [g["rate"] for g in rec["groups"]], "new": new,
                              "probe_b": [g["b"] for g in rec["groups"]], "probe_a": [g["a"] for g in rec["groups"]],
                              "newton_probe": [g["newton_rate"] for g in rec["groups"]],
                              "accepted": [g["accepted"] for g in rec["groups"]],
                              "reason": [g["reason"] for g in rec["groups"]],
                              "exact_b": ex.b.tolist(), "exact_A": ex.A.tolist(),
                              "newton_exact": ex.newton_diag.tolist(), "newton_one_exact": ex.newton_one})
        if step % max(1, wl.steps // 20) == 0 or step == wl.steps:
            trace["step"].append(step)
            trace["lrs"].append(opt.lrs)
            trace["val"].append(_losses(task, sample)[0])
    return {"workload": wl_name, "seed": seed, "ahead": ahead, "groups": [g["name"] for g in task.groups],
            "default_lr": wl.default_lr, "grid": list(wl.grid), "trace": trace, "refreshes": refreshes,
            "lookahead": looks}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ahead", type=int, default=50)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[0, 50, 100, 200, 300])
    ap.add_argument("--lr0", type=float, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    res = run(a.workload, a.seed, a.ahead, a.checkpoints, a.lr0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
