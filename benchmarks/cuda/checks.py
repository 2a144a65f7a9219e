"""The CUDA paths of HiDLR, run on a GPU: training state on the device, bitwise rollback from the
host-memory snapshot, GradScaler (fp16) skips, bf16 autocast, the finiteness check over mixed
dtypes, checkpoints moved between devices, host synchronisations per step, torch.compile, and the
uncertainty estimators on the device.

    PYTHONPATH=src python benchmarks/cuda/checks.py --out benchmarks/results/cuda

Each check prints one line (PASS/FAIL and its figures) and the whole set is written to
``<out>/results.json`` and ``<out>/report.md``. ``--device cpu`` runs the same checks on the CPU
(GradScaler in its CPU form; the synchronisation count needs CUDA and is skipped), which is how the
script is tried before a GPU is at hand. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hidlr import HiDLR, LatestBatchProbe, save_checkpoint

CHECKS: list[tuple[str, Callable[[str], dict[str, Any]]]] = []


def check(fn: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    CHECKS.append((fn.__name__, fn))
    return fn


class Failed(AssertionError):
    pass


def need(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def mlp(seed: int, dtype: torch.dtype = torch.float32, width: int = 64) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)).to(
        dtype
    )


def groups_of(model: nn.Sequential) -> list[dict[str, Any]]:
    return [{"params": model[i].parameters(), "name": f"layer{i}"} for i in (0, 2, 4)]


def data(device: str, dtype: torch.dtype = torch.float32, n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randn(128, 8, generator=gen, dtype=torch.float64)
        y = (x[:, :1] * x[:, 1:2]).sin() + 0.1 * torch.randn(128, 1, generator=gen, dtype=torch.float64)
        out.append((x.to(device, dtype), y.to(device, dtype)))
    return out


def mse_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The probe ``lambda: mse(model(x), y)``, bound now."""
    return lambda: nn.functional.mse_loss(model(x), y)


def same_batch_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
    """``n`` steps on one batch; a HiDLR probes that batch too."""
    for _ in range(n):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        if isinstance(opt, HiDLR):
            opt.step(probe=mse_probe(model, x, y))
        else:
            opt.step()


def train(model: nn.Module, opt: HiDLR, batches, steps: int) -> list[float]:
    losses = []
    for t in range(steps):
        x, y = batches[t % len(batches)]
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        xp, yp = batches[(t + 1) % len(batches)]
        opt.step(probe=mse_probe(model, xp, yp))
        losses.append(float(loss.detach()))
    return losses


def tensors_of_state(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]


# ------------------------------------------------------------------------------------ checks
@check
def trains_on_the_device(device: str) -> dict[str, Any]:
    """300 steps of HiDLR(Adam) with a step budget: every weight and every state tensor stays on the
    device (Adam's step counters stay where torch puts them), the loss falls, the rates are finite."""
    model = mlp(0).to(device)
    opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), total_steps=300)
    losses = train(model, opt, data(device), 300)
    kinds = {p.device.type for p in model.parameters()}
    state = {v.device.type for s in opt.state.values() for k, v in s.items() if k != "step"}
    need(kinds == {torch.device(device).type} and state == kinds, f"weights on {kinds}, state on {state}")
    need(all(torch.isfinite(torch.tensor(opt.lrs))), f"rates {opt.lrs}")
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    need(last < 0.5 * first, f"loss {first:.4f} -> {last:.4f}")
    return {"loss_first8": first, "loss_last8": last, "rates": opt.lrs, "refreshes": opt.refresh_count}


@check
def matches_the_cpu_in_float64(device: str) -> dict[str, Any]:
    """The same float64 run on the device and on the CPU: rates and weights after 60 steps agree to
    the rounding of different kernels (relative 1e-8)."""
    runs = {}
    for where in (device, "cpu"):
        model = mlp(0, torch.float64).to(where)
        opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), every=2)
        train(model, opt, data(where, torch.float64), 60)
        runs[where] = (opt.lrs, torch.cat([p.detach().cpu().reshape(-1) for p in model.parameters()]))
    (rates_d, w_d), (rates_c, w_c) = runs[device], runs["cpu"]
    rate_gap = max(abs(a - b) / abs(b) for a, b in zip(rates_d, rates_c))
    weight_gap = float((w_d - w_c).abs().max() / w_c.abs().max())
    need(rate_gap < 1e-8 and weight_gap < 1e-8, f"relative gaps: rates {rate_gap:.2e}, weights {weight_gap:.2e}")
    return {"max_relative_rate_gap": rate_gap, "max_relative_weight_gap": weight_gap}


@check
def rollback_is_bitwise(device: str) -> dict[str, Any]:
    """With ``rollback=True`` a probe that raises mid-refresh leaves weights and optimizer state
    bitwise as before the step (the snapshot lives in host memory); the device memory a refresh
    step needs above a plain step is reported against the parameters' size."""
    out: dict[str, Any] = {}
    for mode in ("diag", "full"):
        model = mlp(0).to(device)
        opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), every=4, mode=mode, rollback=True)
        batches = data(device)
        train(model, opt, batches, 5)  # next refresh at step 8
        train(model, opt, batches, 3)
        need(opt.is_refresh_step(), "step 8 should refresh")
        x, y = batches[0]
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        weights = [p.detach().clone() for p in model.parameters()]
        state = [v.clone() for v in tensors_of_state(opt)]
        try:
            opt.step(probe=failing_probe(mse_probe(model, x, y), at_call=3))
            need(False, "the probe's error did not propagate")
        except KeyError:
            pass
        same_w = all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
        same_s = all(torch.equal(a, b) for a, b in zip(state, tensors_of_state(opt)))
        need(same_w and same_s and opt.step_count == 8, f"{mode}: weights same {same_w}, state same {same_s}")
        opt.step(probe=mse_probe(model, x, y))  # the retry goes through
        need(opt.step_count == 9, f"{mode}: the retried step did not complete")
        out[mode] = "restored bitwise, retry completed"
    if device.startswith("cuda"):
        out["refresh_peak_over_plain_step_in_param_copies"] = _refresh_peak(device)
    return out


def failing_probe(probe: Callable[[], torch.Tensor], at_call: int) -> Callable[[], torch.Tensor]:
    """``probe`` that raises KeyError on its ``at_call``-th call."""
    calls = [0]

    def call() -> torch.Tensor:
        calls[0] += 1
        if calls[0] == at_call:
            raise KeyError("data ran out")
        return probe()

    return call


def _refresh_peak(device: str, width: int = 1024) -> dict[str, float]:
    """Peak device memory of one refresh step above the model, gradients and Adam state, in copies
    of the parameters, against the same for one plain Adam step."""
    figures = {}
    for name, options in (("adam", None), ("hidlr", {}), ("hidlr-rollback", {"rollback": True})):
        model = mlp(0, width=width).to(device)
        base = torch.optim.Adam(groups_of(model), lr=1e-3)
        opt = base if options is None else HiDLR(base, every=2, **options)
        batches = data(device)
        x, y = batches[0]
        same_batch_steps(model, opt, x, y, 2)  # state exists, and the HiDLR step is a refresh (steps 0 and 2)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        if options is None:
            opt.step()
        else:
            need(opt.is_refresh_step(), "not a refresh step")
            opt.step(probe=mse_probe(model, x, y))
        torch.cuda.synchronize()
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        figures[name] = (torch.cuda.max_memory_allocated() - before) / param_bytes
    return figures


@check
def grad_scaler_fp16(device: str) -> dict[str, Any]:
    """torch.amp.GradScaler: scaled fp32 steps equal unscaled ones bitwise; an overflowing batch on a
    refresh step is skipped by the scaler without HiDLR stepping; 200 steps of fp16 autocast training
    with the scaler stay finite and learn."""
    kind = torch.device(device).type

    def run(scaled: bool, overflow_at: int | None = None, autocast: bool = False, steps: int = 8):
        model = mlp(0).to(device)
        opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), every=2)
        scaler = torch.amp.GradScaler(kind, init_scale=2.0**10) if scaled else None
        batches, counts, scales, losses = data(device), [], [], []
        for t in range(steps):
            x, y = batches[t % 8]
            xp, yp = batches[(t + 1) % 8]
            opt.zero_grad()
            dtype = torch.float16 if kind == "cuda" else torch.bfloat16
            with torch.autocast(kind, dtype=dtype, enabled=autocast):
                loss = nn.functional.mse_loss(model(x).float(), y)

            def probe(xp=xp, yp=yp, model=model, dtype=dtype) -> torch.Tensor:
                with torch.autocast(kind, dtype=dtype, enabled=autocast):
                    return nn.functional.mse_loss(model(xp).float(), yp)

            if scaler is None:
                loss.backward()
                opt.step(probe=probe)
            else:
                scaler.scale(loss * (float("inf") if t == overflow_at else 1.0)).backward()
                scaler.step(opt, probe=probe)
                scaler.update()
                scales.append(scaler.get_scale())
            counts.append(opt.step_count)
            losses.append(float(loss.detach()))
        return model, opt, counts, scales, losses

    plain, plain_opt, _, _, _ = run(False)
    scaled, scaled_opt, _, _, _ = run(True)
    bitwise = plain_opt.lrs == scaled_opt.lrs and all(
        torch.equal(a, b) for a, b in zip(plain.parameters(), scaled.parameters())
    )
    need(bitwise, "scaled and unscaled fp32 steps differ")
    _, opt, counts, scales, _ = run(True, overflow_at=2)
    skipped = scales[2] == scales[1] / 2 and counts[:4] == [1, 2, 2, 3]
    need(skipped, f"overflow: scales {scales[:4]}, counts {counts[:4]}")
    need(len(opt.history) == 4, f"{len(opt.history)} refreshes, expected 4")
    model, opt, _, scales, losses = run(True, autocast=True, steps=200)
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    need(finite and last < 0.7 * first, f"fp16 autocast: finite {finite}, loss {first:.4f} -> {last:.4f}")
    return {
        "scaled_equals_unscaled_bitwise": True,
        "overflow_step_skipped": True,
        "autocast_loss": [first, last],
        "final_scale": scales[-1],
        "refreshes": opt.refresh_count,
    }


@check
def bf16_autocast(device: str) -> dict[str, Any]:
    """Training and probes under bf16 autocast: the probe's bf16 loss is read in float64, rates are
    finite and the loss falls."""
    kind = torch.device(device).type
    model = mlp(0).to(device)
    opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), total_steps=150)
    batches, losses = data(device), []
    for t in range(150):
        x, y = batches[t % 8]
        xp, yp = batches[(t + 1) % 8]
        opt.zero_grad()
        with torch.autocast(kind, dtype=torch.bfloat16):
            loss = nn.functional.mse_loss(model(x), y)
        loss.backward()

        def probe(xp=xp, yp=yp) -> torch.Tensor:
            with torch.autocast(kind, dtype=torch.bfloat16):
                return nn.functional.mse_loss(model(xp), yp)

        opt.step(probe=probe)
        losses.append(float(loss.detach()))
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    need(all(torch.isfinite(torch.tensor(opt.lrs))) and last < 0.7 * first, f"loss {first:.4f} -> {last:.4f}")
    return {"loss": [first, last], "rates": opt.lrs, "refreshes": opt.refresh_count}


@check
def non_finite_gradients_over_mixed_dtypes(device: str) -> dict[str, Any]:
    """Groups in float32, float16 and bfloat16 on the device: an inf in the float16 group's gradient
    is named (group and shape) and nothing changes; clean gradients step normally."""
    torch.manual_seed(0)
    layers = [nn.Linear(4, 4).to(device, dt) for dt in (torch.float32, torch.float16, torch.bfloat16)]
    opt = HiDLR(
        torch.optim.SGD([{"params": m.parameters(), "name": str(m.weight.dtype)} for m in layers], lr=1e-2),
        every=1000,
    )
    for m in layers:
        for p in m.parameters():
            p.grad = torch.ones_like(p)
    opt.step(probe=lambda: torch.zeros((), device=device))  # step 0 refreshes; the probe is flat
    before = [p.detach().clone() for m in layers for p in m.parameters()]
    layers[1].weight.grad[2, 3] = float("inf")
    try:
        opt.step()
        need(False, "an inf gradient was not refused")
    except FloatingPointError as e:
        message = str(e)
    need("torch.float16" in message and "(4, 4)" in message, f"message does not name group and shape: {message}")
    need(all(torch.equal(a, b) for a, b in zip(before, [p for m in layers for p in m.parameters()])), "weights moved")
    layers[1].weight.grad.fill_(1.0)
    opt.step()
    need(opt.step_count == 2, "the clean step did not run")
    return {"message": message}


@check
def checkpoints_move_between_devices(device: str) -> dict[str, Any]:
    """A checkpoint saved on the device (``save_checkpoint``) loads onto the CPU with
    ``map_location`` and a CPU one onto the device; the moved runs go on like the unmoved one
    (float64, relative 1e-8 after 20 more steps)."""
    finals = {}
    for name, first, second in (("stay", device, device), ("to_cpu", device, "cpu"), ("to_device", "cpu", device)):
        model = mlp(0, torch.float64).to(first)
        opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), every=3)
        batches = data(first, torch.float64)
        train(model, opt, batches, 10)
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
        buf.seek(0)
        saved = torch.load(buf, map_location=second, weights_only=True)
        model2 = mlp(1, torch.float64).to(second)
        opt2 = HiDLR(torch.optim.Adam(groups_of(model2), lr=1e-3), every=3)
        model2.load_state_dict(saved["model"])
        opt2.load_state_dict(saved["opt"])
        state_kinds = {v.device.type for s in opt2.state.values() for k, v in s.items() if k != "step"}
        need(state_kinds == {torch.device(second).type}, f"{name}: state on {state_kinds}")
        batches2 = data(second, torch.float64)
        for t in range(10, 30):  # the same batch order as an unbroken run
            x, y = batches2[t % 8]
            xp, yp = batches2[(t + 1) % 8]
            opt2.zero_grad()
            nn.functional.mse_loss(model2(x), y).backward()
            opt2.step(probe=mse_probe(model2, xp, yp))
        finals[name] = (opt2.lrs, torch.cat([p.detach().cpu().reshape(-1) for p in model2.parameters()]))
    gaps = {}
    for name in ("to_cpu", "to_device"):
        w, ref = finals[name][1], finals["stay"][1]
        gaps[name] = float((w - ref).abs().max() / ref.abs().max())
    need(max(gaps.values()) < 1e-8, f"moved runs differ: {gaps}")
    path = Path(f"/tmp/hidlr-cuda-check-{time.time_ns()}.pt")
    save_checkpoint({"opt": opt2.state_dict()}, path)
    torch.load(path, map_location="cpu", weights_only=True)
    path.unlink()
    return {"relative_weight_gap_after_move": gaps}


@check
def host_syncs_per_step(device: str) -> dict[str, Any]:
    """Host synchronisations per non-refresh step, counted by ``torch.cuda.set_sync_debug_mode``:
    bare Adam, HiDLR at defaults (the finiteness check reads one flag per device), HiDLR with
    ``check_finite="refresh"``, and with tensor learning rates."""
    if not device.startswith("cuda"):
        return {"skipped": "needs CUDA"}
    counts = {}
    configs = {
        "adam": None,
        "hidlr-default": {},
        "hidlr-check-on-refresh": {"check_finite": "refresh"},
        "hidlr-tensor-lr": {"tensor_lr": True},
    }
    for name, options in configs.items():
        model = mlp(0).to(device)
        options = dict(options) if options is not None else None
        tensor_lr = options.pop("tensor_lr", False) if options is not None else False
        lr = torch.tensor(1e-3) if tensor_lr else 1e-3
        base = torch.optim.Adam(groups_of(model), lr=lr)
        opt = base if options is None else HiDLR(base, every=1000, **options)
        batches = data(device)
        x, y = batches[0]
        same_batch_steps(model, opt, x, y, 3)  # warm: state exists, step 0 refreshed
        torch.cuda.synchronize()
        steps = 20
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(steps):
                    opt.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in seen if "synchroniz" in str(w.message).lower()]
        counts[name] = len(syncs) / steps
    need(counts["hidlr-check-on-refresh"] <= counts["adam"], f"syncs beyond Adam's without the check: {counts}")
    need(counts["hidlr-default"] <= counts["adam"] + 1, f"more than one extra sync per step: {counts}")
    return {"syncs_per_non_refresh_step": counts}


@check
def probe_rules_on_the_device(device: str) -> dict[str, Any]:
    """The probe rules with the model on the device: BatchNorm running statistics untouched,
    dropout kept (``eval_mode=False``) but drawn from common random numbers (two calls in one step
    agree bitwise), and the device's random generator left where it was."""
    from hidlr import BatchProbe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 1)).to(device)
    x, y = data(device)[0]
    probe = BatchProbe(lambda: nn.functional.mse_loss(model(x), y), model, eval_mode=False, seed=7)
    probe.begin_step(3)
    stats = [model[1].running_mean.clone(), model[1].running_var.clone()]
    generator_before = torch.cuda.get_rng_state() if device.startswith("cuda") else torch.get_rng_state()
    first, second = probe(), probe()
    generator_after = torch.cuda.get_rng_state() if device.startswith("cuda") else torch.get_rng_state()
    need(torch.equal(first, second), f"two probe calls differ: {float(first)} vs {float(second)}")
    need(torch.equal(stats[0], model[1].running_mean) and torch.equal(stats[1], model[1].running_var), "stats moved")
    need(torch.equal(generator_before, generator_after), "the device's generator moved")
    need(first.device.type == torch.device(device).type, f"loss on {first.device}")
    probe.begin_step(4)
    other = probe()
    need(not torch.equal(first, other), "the next step's dropout mask is the same")
    return {"loss_step3": float(first), "loss_step4": float(other)}


@check
def curvature_and_influence_on_the_device(device: str) -> dict[str, Any]:
    """Exact curvature (``hidlr.curvature``: directional b and A, top eigenvalues, Hutchinson
    traces) of a float64 model on the device equals the CPU's (1e-8 of the largest value), and influence and
    freezing work on a HiDLR trained on the device."""
    from hidlr import curvature, influence

    values = {}
    for where in (device, "cpu"):
        model = mlp(0, torch.float64).to(where)
        x, y = data(where, torch.float64)[0]
        groups = [list(model[i].parameters()) for i in (0, 2, 4)]
        directions = [[torch.ones_like(p) for p in g] for g in groups]
        loss = mse_probe(model, x, y)
        d = curvature.along(loss, groups, directions)
        values[where] = torch.cat(
            [
                d.b.cpu().reshape(-1),
                d.A.cpu().reshape(-1),
                curvature.top_eigenvalues(loss, groups, iters=20).cpu().reshape(-1),
                curvature.hutchinson_traces(loss, groups, samples=8).mean.cpu().reshape(-1),
            ]
        )
    gap = float((values[device] - values["cpu"]).abs().max() / values["cpu"].abs().max())
    need(gap < 1e-8, f"device and CPU curvature differ by {gap:.2e} (relative to the largest value)")
    model = mlp(0).to(device)
    opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), every=2)
    train(model, opt, data(device), 12)
    scores = opt.influence
    need(len(scores) == 3 and all(v == v for v in scores), f"influence {scores}")
    plan = influence.freeze(opt, budget=0.5)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    need(bool(frozen), "nothing was frozen at a budget of half the parameters")
    train(model, opt, data(device), 4)  # training goes on with the frozen groups
    return {"max_relative_gap": gap, "influence": scores, "frozen_groups": list(plan.frozen_groups)}


@check
def torch_compile(device: str) -> dict[str, Any]:
    """A ``torch.compile``d model trained by HiDLR with a LatestBatchProbe (the probe re-runs the
    compiled forward) for 100 steps, against the same run in eager mode: finite, and the final
    loss within 5% of eager's; the compiled run's time (compilation included) is reported."""
    finals, seconds = {}, {}
    for name in ("eager", "compiled"):
        model = mlp(0).to(device)
        forward = torch.compile(model) if name == "compiled" else model
        target: list[torch.Tensor] = []
        probe = LatestBatchProbe(forward, loss=lambda out, target=target: nn.functional.mse_loss(out, target[-1]))
        opt = HiDLR(torch.optim.Adam(groups_of(model), lr=1e-3), probe=probe, total_steps=100)
        batches, losses = data(device), []
        start = time.perf_counter()
        for t in range(100):
            x, y = batches[t % 8]
            target.append(y)
            opt.zero_grad()
            loss = nn.functional.mse_loss(forward(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        seconds[name] = time.perf_counter() - start
        need(all(torch.isfinite(torch.tensor(opt.lrs))), f"{name}: rates {opt.lrs}")
        finals[name] = sum(losses[-8:]) / 8
    gap = abs(finals["compiled"] / finals["eager"] - 1)
    need(gap < 0.05, f"final loss compiled {finals['compiled']:.4f} against eager {finals['eager']:.4f}")
    return {"final_loss": finals, "seconds": seconds}


@check
def estimators_on_the_device(device: str) -> dict[str, Any]:
    """MDN, BNN and a deep ensemble fitted on device tensors: the fitted nets live on the device, the
    test log-likelihood is close to the CPU fit's, and the predictive surface (point predictions,
    intervals, quantiles, the mixture's metrics) and conformal intervals work on device input."""
    from hidlr.uq import BNN, MDN, ConformalRegressor, DeepEnsemble, metrics

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(600, 1, generator=gen, dtype=torch.float64) * 6 - 3
    y = torch.sin(x[:, 0]) + 0.2 * torch.randn(600, generator=gen, dtype=torch.float64)
    xt, yt, xs, ys = x[:400].float(), y[:400].float(), x[400:].float(), y[400:].float()
    out: dict[str, Any] = {}
    for name, make in (
        ("mdn", lambda: MDN(epochs=60)),
        ("bnn", lambda: BNN(epochs=60)),
        ("ensemble", lambda: DeepEnsemble(MDN(epochs=60), members=3)),
    ):
        scores = {}
        for where in (device, "cpu"):
            model = make().fit(xt.to(where), yt.to(where))
            nets = [e.module_ for e in model.estimators_] if hasattr(model, "estimators_") else [model.module_]
            kinds = {p.device.type for net in nets for p in net.parameters()}
            need(kinds == {torch.device(where).type}, f"{name} on {where}: parameters on {kinds}")
            scores[where] = float(model.score(xs.to(where), ys.to(where)))
        gap = abs(scores[device] - scores["cpu"])
        need(gap < 0.15, f"{name}: device {scores[device]:.3f}, cpu {scores['cpu']:.3f}")
        out[name] = scores
    model = MDN(epochs=60).fit(xt.to(device), yt.to(device))
    point = model.predict(xs.to(device))
    lo_hi = model.predict_interval(xs.to(device), coverage=0.9)
    model.predict_quantiles(xs.to(device), alpha=[0.05, 0.5, 0.95])
    evaluation = metrics.evaluate(model.predict_proba(xs.to(device)), ys.to(device))
    need(point.shape == (200,) and all(v == v for v in evaluation.values()), f"evaluate: {evaluation}")
    out["mdn_evaluate"] = evaluation
    out["mdn_interval_type"] = type(lo_hi).__name__
    for method in ("pit", "cqr", "recalibrate"):
        conformal = ConformalRegressor(MDN(epochs=60), method=method).fit(xt.to(device), yt.to(device))
        conformal.predict_interval(xs.to(device), coverage=0.9)
    return out


@check
def lightning_on_the_device(device: str) -> dict[str, Any]:
    """A Lightning Trainer on the device's accelerator with the HiDLRCallback (no hand-built probe)
    and a LearningRateMonitor: the run ends, refreshes happened, the logged rate is the applied one."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    from hidlr.integrations.lightning import HiDLRCallback

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(0)
            self.devices_seen: set[str] = set()

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.devices_seen.add(next(self.parameters()).device.type)
            return nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return HiDLR(torch.optim.Adam(groups_of(self.net), lr=1e-3))

    x, y = data("cpu")[0]
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    module = Net()
    folder = Path(f"/tmp/hidlr-cuda-check-lightning-{time.time_ns()}")
    monitor = LearningRateMonitor(logging_interval="step")
    trainer = L.Trainer(
        max_steps=24,
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        logger=CSVLogger(folder),
        log_every_n_steps=1,
        callbacks=[HiDLRCallback(), monitor],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    opt = trainer.optimizers[0]
    seen = module.devices_seen  # (Lightning moves the module back to the CPU at teardown)
    need(seen == {torch.device(device).type}, f"training steps ran on {seen}")
    need(opt.refresh_count > 0 and opt.total_steps == 24, f"{opt.refresh_count} refreshes, budget {opt.total_steps}")
    logged = trainer.callback_metrics
    rates = {k: float(v) for k, v in logged.items() if k.startswith("lr-")}
    close = all(abs(a - b) <= 1e-6 * b for a, b in zip(sorted(rates.values()), sorted(opt.lrs)))
    need(len(rates) == len(opt.lrs) and close, f"logged {rates}, applied {opt.lrs}")  # logged in float32
    return {"refreshes": opt.refresh_count, "logged_rates": rates}


# ------------------------------------------------------------------------------------- runner
def environment(device: str, commit: str | None) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    if commit:
        env["commit"] = commit
        return env
    try:
        env["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        env["commit"] = "unknown"
    return env


def report(env: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "# CUDA checks",
        "",
        f"`PYTHONPATH=src python benchmarks/cuda/checks.py --device {env['device']}` at commit {env['commit']}; "
        f"{env.get('gpu', env['device'])}, torch {env['torch']}"
        + (f" (CUDA {env['cuda']})" if env.get("cuda") else "")
        + f", Python {env['python']}.",
        "",
        "| check | result | seconds | figures |",
        "| --- | --- | ---: | --- |",
    ]
    for r in results:
        figures = r.get("error") or json.dumps(r.get("figures", {}), default=str)
        lines.append(f"| {r['name']} | {'PASS' if r['ok'] else 'FAIL'} | {r['seconds']:.1f} | {figures[:400]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cuda"))
    parser.add_argument("--only", nargs="*", help="names of checks to run (default: all)")
    parser.add_argument("--commit", help="the commit to name in the report (default: git's HEAD; a copy's git can lag)")
    args = parser.parse_args()
    env = environment(args.device, args.commit)
    print(json.dumps(env))
    results = []
    for name, fn in CHECKS:
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            figures, ok, error = fn(args.device), True, None
        except Exception as e:  # every failure is reported, the next check still runs
            figures, ok = {}, False
            error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        seconds = time.perf_counter() - start
        results.append({"name": name, "ok": ok, "seconds": seconds, "figures": figures, "error": error})
        print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s) {error or json.dumps(figures, default=str)[:300]}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"environment": env, "checks": results}, indent=1, default=str))
    (args.out / "report.md").write_text(report(env, results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
