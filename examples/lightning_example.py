"""Hi-DLR in a Lightning Trainer: a HiDLR optimizer from configure_optimizers, HiDLRCallback for the
probe, LearningRateMonitor logging the applied rates (one column per group) to a CSV log."""

import csv
import tempfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hidlr import HiDLR
from hidlr.integrations.lightning import HiDLRCallback


class Regressor(L.LightningModule):
    """A small MLP with BatchNorm and dropout; two param groups (body, head)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        groups = [
            {"params": self.body.parameters(), "name": "body"},
            {"params": self.head.parameters(), "name": "head"},
        ]
        return HiDLR(torch.optim.AdamW(groups, lr=1e-3))


def main(steps: int = 200, log_dir: str | None = None) -> dict:
    """Fits for ``steps`` steps; returns the final rates and the learning-rate columns of the log."""
    L.seed_everything(0, verbose=False)
    x = torch.randn(2048, 8)
    y = (x[:, :4].sum(1, keepdim=True)).sin() + 0.1 * torch.randn(2048, 1)
    data = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = Regressor()
    with tempfile.TemporaryDirectory() as tmp:
        logger = CSVLogger(log_dir or tmp, name="lightning_example")
        trainer = L.Trainer(
            max_steps=steps,
            logger=logger,
            log_every_n_steps=10,
            accelerator="auto",
            devices=1,
            callbacks=[HiDLRCallback(), LearningRateMonitor(logging_interval="step")],
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(model, data)
        with open(Path(logger.log_dir) / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    opt = trainer.optimizers[0]
    columns = sorted(k for k in rows[0] if k.startswith("lr-"))
    last = {c: float(r[c]) for r in rows for c in columns if r.get(c)}
    print("rate columns in the log:", columns)
    print("last logged rates:", {c: f"{v:.2e}" for c, v in last.items()})
    # opt.estimates: Hi-DLR's rates; the applied ones (opt.lrs) fell to 0 over the last fifth of the
    # trainer's step budget (HiDLR's end-of-run anneal, anneal=None turns it off)
    print("rates Hi-DLR chose:", [f"{r:.2e}" for r in opt.estimates], f"({len(opt.history)} refreshes)")
    return {
        "estimates": opt.estimates,
        "optimizer": opt,
        "columns": columns,
        "last_logged": last,
        "refreshes": len(opt.history),
    }


if __name__ == "__main__":
    main()
