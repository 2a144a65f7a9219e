"""The CUDA checks of the optimizer step: state on the device, agreement with the CPU, bitwise
rollback, GradScaler, bf16 autocast, the finiteness check over mixed dtypes, checkpoints moved
between devices, host synchronisations per step."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from cuda_common import (
    check,
    data,
    failing_probe,
    groups_of,
    mlp,
    mse_probe,
    need,
    same_batch_steps,
    tensors_of_state,
    train,
)
from torch import nn

from hidlr import HiDLR, save_checkpoint


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


@check(cuda_only=True)
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


@check(cuda_only=True)
def host_syncs_per_step(device: str) -> dict[str, Any]:
    """Host synchronisations per non-refresh step, counted by ``torch.cuda.set_sync_debug_mode``:
    bare Adam, HiDLR at defaults (the finiteness check reads one flag per device), HiDLR with
    ``check_finite="refresh"``, and with tensor learning rates."""
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
