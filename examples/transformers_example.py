"""Hi-DLR in the Transformers Trainer: a 2-layer BERT built from a config (no download) learns whether a
marker token occurs in a sequence; HiDLR(AdamW) with body and head groups, HiDLRCallback for the probe,
the schedule and the logged rates."""

import tempfile

import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from hidlr import HiDLR, groups
from hidlr.integrations.transformers import HiDLRCallback

MARKER = 7


class MarkerTokens(Dataset):
    """Random token sequences (length 16); label 1 when the marker token occurs."""

    def __init__(self, n: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(10, 100, (n, 16), generator=gen)
        put = torch.rand(n, generator=gen) < 0.5
        self.ids[put, torch.randint(1, 16, (int(put.sum()),), generator=gen)] = MARKER
        self.labels = (self.ids == MARKER).any(1).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(16, dtype=torch.long), "labels": self.labels[i]}


def main(steps: int = 150) -> dict:
    """Trains for ``steps`` steps; returns the final rates and the logged learning-rate entries."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    opt = HiDLR(torch.optim.AdamW(groups.head_body(model, head="classifier"), lr=1e-4))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=32,
            logging_steps=10,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=MarkerTokens(2048, seed=0),
            optimizers=(opt, None),
            callbacks=[HiDLRCallback()],
        )
        trainer.train()
    logged = [
        {k: v for k, v in row.items() if k.startswith(("learning_rate", "loss"))}
        for row in trainer.state.log_history
        if "learning_rate" in row
    ]
    for row in logged[-3:]:
        print({k: f"{v:.3e}" for k, v in row.items()})
    # opt.estimates: Hi-DLR's rates; the applied ones (opt.lrs) fell to 0 over the last fifth of the
    # trainer's step budget (HiDLR's end-of-run anneal, anneal=None turns it off)
    print("rates Hi-DLR chose:", [f"{r:.2e}" for r in opt.estimates], f"({len(opt.history)} refreshes)")
    return {
        "estimates": opt.estimates,
        "logged": logged,
        "refreshes": len(opt.history),
    }


if __name__ == "__main__":
    main()
