"""The CUDA checks around the optimizer: the probe rules, exact curvature and influence,
torch.compile, the uncertainty estimators and Lightning on the device."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from cuda_common import check, data, groups_of, mlp, mse_probe, need, train
from torch import nn

from hidlr import HiDLR, LatestBatchProbe
from hidlr.optim.schedule import anneal_factor


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
    # the rates of the last step: no refresh since the one at step 14, and the end-of-run anneal's factor
    last = [e * anneal_factor(opt.rules, opt.step_count - 1) for e in opt.estimates]
    close = all(abs(a - b) <= 1e-6 * b for a, b in zip(sorted(rates.values()), sorted(last)))
    need(len(rates) == len(last) and close, f"logged {rates}, applied in the last step {last}")  # logged in float32
    return {"refreshes": opt.refresh_count, "logged_rates": rates}
