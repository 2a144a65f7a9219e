"""Runs one method on one workload for one seed and returns a plain-data record."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from hidlr.bench.lr.methods import Method, Setup, Unavailable
from hidlr.bench.lr.scores import time_to_target
from hidlr.bench.lr.workloads import Task, Workload
from hidlr.probes import frozen_norm_stats, probe_context  # noqa: F401  (frozen_norm_stats: re-exported)


def make_probe(
    task: Task, batch: Any, mode: str, probe_gen: torch.Generator, crn_seed: int
) -> Callable[[], torch.Tensor]:
    """The probe closure handed to ``HiDLR.step``.

    ``mode="same"`` probes on the training batch; ``"separate"`` on one extra batch drawn (once,
    lazily) from ``probe_gen``. Stochastic losses reuse one random stream (seed ``crn_seed``) in
    every call of the step, so that the probes differ only by the weights.
    """
    if mode not in ("same", "separate"):
        raise ValueError(f"probe mode must be 'same' or 'separate', got {mode!r}")
    cache: list[Any] = []

    def probe() -> torch.Tensor:
        if not cache:
            cache.append(batch if mode == "same" else task.batch(probe_gen))
        with probe_context(task.model, eval_mode=False, seed=crn_seed if task.stochastic else None):
            return task.loss(task.model, cache[0])

    return probe


def _evaluate(task: Task, setup: Setup) -> dict[str, float]:
    model = setup.eval_model if setup.eval_model is not None else task.model
    if setup.before_eval:
        setup.before_eval()
    model.eval()
    try:
        with torch.no_grad():
            return task.evaluate(model)
    finally:
        model.train()
        if setup.after_eval:
            setup.after_eval()


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    lrs = getattr(opt, "lrs", None)
    if lrs is None:
        lrs = [g["lr"] for g in opt.param_groups]
    return [float(v) for v in lrs]


def _history_summary(opt: torch.optim.Optimizer) -> dict[str, Any] | None:
    hist = getattr(opt, "history", None)
    if hist is None:
        return None
    out: dict[str, Any] = {"refreshes": len(hist)}
    groups = [g for rec in hist if isinstance(rec, dict) for g in rec.get("groups", [])]
    if groups:
        reasons: dict[str, int] = {}
        for g in groups:
            if not g.get("accepted", True):
                key = str(g.get("reason")).split(" (")[0]  # drop the figures, keep the rule
                reasons[key] = reasons.get(key, 0) + 1
        out["accepted_fraction"] = sum(bool(g.get("accepted")) for g in groups) / len(groups)
        out["rejections"] = reasons
    forwards = [rec.get("forwards") for rec in hist if isinstance(rec, dict) and rec.get("forwards")]
    if forwards:
        out["probe_forwards"] = sum(forwards)
    scales = [rec["joint_scale"] for rec in hist if isinstance(rec, dict) and rec.get("joint_scale") is not None]
    if scales:
        out["joint_scale_below_1"] = sum(sc < 1.0 for sc in scales) / len(scales)
    return out


def run_one(wl: Workload, method: Method, seed: int, steps: int, n_evals: int = 20) -> dict[str, Any]:
    """Train ``method`` on ``wl`` (seed ``seed``) for ``steps`` steps; the run's record.

    The record holds: status ("ok", "diverged", "error", "skipped"), the validation curve
    (step, training time in s, loss, accuracy) at ``n_evals`` points, final loss/accuracy, steps
    and training time to the workload's target, the mean time per training step, per-group rates.
    Training time excludes validation.
    """
    rec: dict[str, Any] = {
        "workload": wl.name,
        "method": method.name,
        "family": method.family,
        "varies": method.varies,
        "lr0": method.lr0,
        "seed": seed,
        "steps": steps,
        "status": "ok",
        "reason": None,
        "final_loss": None,
        "final_acc": None,
        "steps_to_target": None,
        "time_to_target": None,
        "step_time": None,
        "lr": None,
    }
    torch.manual_seed(seed)
    task = wl.build(seed)
    try:
        setup = method.setup(wl, task, steps, seed)
    except Unavailable as exc:
        return dict(rec, status="skipped", reason=str(exc))
    opt = setup.optimizer
    rec["lr"] = setup.lr
    rec["groups"] = [g.get("name", str(i)) for i, g in enumerate(opt.param_groups)]
    gen = torch.Generator().manual_seed(seed * 7919 + 1)  # training stream: same for every method
    probe_gen = torch.Generator().manual_seed(seed * 7919 + 2)
    eval_every = max(1, steps // n_evals)
    curve: dict[str, list] = {"step": [], "time": [], "loss": [], "acc": [], "train_loss": []}
    lr_trace: dict[str, list] = {"step": [], "lrs": []}

    def record_eval(step: int, t: float, train_losses: list[float]) -> bool:
        ev = _evaluate(task, setup)
        curve["step"].append(step)
        curve["time"].append(t)
        curve["loss"].append(ev["loss"])
        curve["acc"].append(ev.get("acc"))
        curve["train_loss"].append(sum(train_losses) / len(train_losses) if train_losses else None)
        return math.isfinite(ev["loss"])

    task.model.train()
    record_eval(0, 0.0, [])
    lr_trace["step"].append(0)
    lr_trace["lrs"].append(_lrs(opt))
    t_train, done, window = 0.0, 0, []
    try:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            batch = task.batch(gen)
            opt.zero_grad(set_to_none=True)
            loss = task.loss(task.model, batch)
            loss.backward()
            if setup.probe is not None:
                opt.step(probe=make_probe(task, batch, setup.probe, probe_gen, crn_seed=seed * 100_003 + step))
            else:
                opt.step()
            if setup.after_step:
                setup.after_step()
            lv = float(loss.detach())
            t_train += time.perf_counter() - t0
            done = step
            window.append(lv)
            if not math.isfinite(lv):
                rec.update(status="diverged", reason=f"non-finite training loss at step {step}")
                break
            if step % eval_every == 0 or step == steps:
                lr_trace["step"].append(step)
                lr_trace["lrs"].append(_lrs(opt))
                ok = record_eval(step, t_train, window)
                window = []
                if not ok:
                    rec.update(status="diverged", reason=f"non-finite validation loss at step {step}")
                    break
    except FloatingPointError as exc:  # non-finite gradients refused by the optimizer: diverged
        rec.update(status="diverged", reason=f"{exc.__class__.__name__}: {exc}")
    except Exception as exc:  # a failing method must not stop the benchmark
        rec.update(status="error", reason=f"{exc.__class__.__name__}: {exc}", traceback=traceback.format_exc(limit=4))
    rec["step_time"] = t_train / done if done else None
    rec["curve"], rec["lr_trace"] = curve, lr_trace
    rec["hidlr"] = _history_summary(opt)
    if callable(getattr(opt, "stats", None)):
        rec["optimizer_stats"] = opt.stats()
    if rec["status"] == "ok":
        rec["final_loss"], rec["final_acc"] = curve["loss"][-1], curve["acc"][-1]
    rec["steps_to_target"], rec["time_to_target"] = time_to_target(
        curve["step"], curve["time"], curve["loss"], wl.target
    )
    return rec
