"""HiDLR inside a real Lightning Trainer: no hand-built probe, probes that leave logging, BatchNorm
statistics and dropout alone, and a LearningRateMonitor that shows the applied rates once per group."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hidlr import HiDLR
from hidlr.integrations.lightning import HiDLRCallback
from hidlr.optim.schedule import anneal_factor

STEPS = 16


class _Net(L.LightningModule):
    def __init__(self, scheduler_factor=None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(16, 1)
        self.scheduler_factor = scheduler_factor
        self.logged, self.probe_dropout_modes = 0, []

    def training_step(self, batch, batch_idx):
        x, y = batch
        if not torch.is_grad_enabled():  # a forward-only probe
            self.probe_dropout_modes.append(self.body[3].training)
        loss = nn.functional.mse_loss(self.head(self.body(x)), y)
        self.log("train_loss", loss)
        return {"loss": loss}

    def log(self, *args, **kwargs):  # counts the values that reach Lightning's logging
        self.logged += 1
        return super().log(*args, **kwargs)

    def configure_optimizers(self):
        opt = HiDLR(
            torch.optim.Adam(
                [
                    {"params": self.body.parameters(), "name": "body"},
                    {"params": self.head.parameters(), "name": "head"},
                ],
                lr=1e-3,
            )
        )
        if self.scheduler_factor is None:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: self.scheduler_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _RatesAtBatchStart(Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(list(trainer.optimizers[0].lrs))


def _fit(tmp_path, net, callbacks):
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True).sin()), batch_size=32)
    trainer = L.Trainer(
        max_steps=STEPS,
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        accelerator="cpu",
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(net, data)
    return trainer.optimizers[0]


@pytest.mark.parametrize("factor", [None, 0.5])
def test_callback_probes_training_step_and_the_monitor_logs_applied_rates_once(tmp_path, factor):
    net, monitor, seen = _Net(factor), LearningRateMonitor(logging_interval="step"), _RatesAtBatchStart()
    opt = _fit(tmp_path, net, [HiDLRCallback(), monitor, seen])
    assert opt.refresh_count >= 4 and opt.default_probe is None  # refreshed; the probe removed at teardown
    assert opt.total_steps == STEPS  # told the trainer's step budget
    assert sorted(monitor.lrs) == ["lr-HiDLR/body", "lr-HiDLR/head"]  # once per group, no "lr-Adam" copy
    assert monitor.lrs["lr-HiDLR/body"] == [r[0] for r in seen.seen]  # the applied rates, at each batch start
    assert monitor.lrs["lr-HiDLR/head"] == [r[1] for r in seen.seen]
    tail = anneal_factor(opt.rules, STEPS - 1)  # the budget turns on the end-of-run anneal
    assert 0 < tail < 1 and opt.lrs == [0.0, 0.0]
    assert seen.seen[-1] == pytest.approx([e * (factor or 1.0) * tail for e in opt.estimates], rel=1e-12)
    assert type(monitor) is LearningRateMonitor  # the stock class is put back after the fit
    assert net.logged == STEPS  # probe calls of training_step logged nothing
    assert net.probe_dropout_modes and not any(net.probe_dropout_modes)  # dropout off in every probe
    assert int(net.body[1].num_batches_tracked) == STEPS  # BatchNorm statistics saw training batches only


def test_probe_data_gives_each_refresh_a_batch_of_its_own(tmp_path):
    torch.manual_seed(1)
    xp = torch.randn(64, 4)
    probe_data = DataLoader(TensorDataset(xp, xp.sum(1, keepdim=True).sin()), batch_size=16)
    net, seen = _Net(), []
    original = net.training_step

    def recording(batch, batch_idx):
        if not torch.is_grad_enabled():  # a probe call
            seen.append(batch[0])
        return original(batch, batch_idx)

    net.training_step = recording
    opt = _fit(tmp_path, net, [HiDLRCallback(probe_data=probe_data)])
    assert opt.refresh_count >= 4 and seen
    probe_rows = {tuple(x.flatten().tolist()) for b in seen for x in b}
    assert probe_rows <= {tuple(x.tolist()) for x in xp}  # every probe batch came from probe_data
    with pytest.raises(TypeError, match="batches must be an iterable"):
        HiDLRCallback(probe_data=5)


def test_step_budget_false_leaves_total_steps_unset(tmp_path):
    opt = _fit(tmp_path, _Net(None), [HiDLRCallback(step_budget=False)])
    assert opt.refresh_count >= 4 and opt.total_steps is None


def test_without_the_callback_the_closure_is_the_probe(tmp_path):
    net, monitor = _Net(), LearningRateMonitor(logging_interval="step")
    opt = _fit(tmp_path, net, [monitor])
    assert opt.refresh_count >= 4 and opt.lrs != [1e-3, 1e-3]
    # what the callback fixes: probes are logged and update BatchNorm, the stock monitor shows group["lr"]
    assert net.logged > STEPS and int(net.body[1].num_batches_tracked) > STEPS
    assert sorted(monitor.lrs) == ["lr-Adam/body", "lr-Adam/head"]
    assert set(monitor.lrs["lr-Adam/body"]) == {1e-3}
