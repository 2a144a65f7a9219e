"""HiDLR inside a real Transformers Trainer (a 1-layer BERT from a config): no hand-built probe, the
default linear schedule held at 1 (or kept on request), the applied rates logged per group."""

import pytest
import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

from hidlr import HiDLR, groups
from hidlr.integrations.transformers import HiDLRCallback, find_hidlr
from hidlr.optim.schedule import anneal_factor

STEPS = 10


class _Tokens(Dataset):
    def __init__(self, n=256):
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 50, (n, 8), generator=gen)
        self.labels = (self.ids < 20).any(1).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _trainer(tmp_path, callbacks, scheduler=None):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    opt = HiDLR(torch.optim.AdamW(groups.head_body(model, head="classifier"), lr=1e-3), every=2)
    sched = scheduler(opt) if scheduler else None
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=16,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Tokens(), optimizers=(opt, sched), callbacks=callbacks)
    return trainer, opt


def _logged(trainer):
    return [row for row in trainer.state.log_history if "learning_rate" in row]


def test_trainer_runs_with_the_callback_and_logs_applied_rates_per_group(tmp_path):
    seen = []

    class Record(TrainerCallback):  # a callback after ours sees the per-group keys
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    trainer, opt = _trainer(tmp_path, [HiDLRCallback(), Record()])
    with pytest.warns(UserWarning, match="'linear'.*held at 1"):
        trainer.train()
    assert len(opt.history) == STEPS // 2 and opt.default_probe is None
    assert opt.total_steps == STEPS  # told the Trainer's max_steps
    rows = _logged(trainer)
    assert len(rows) == STEPS
    # the Trainer's linear decay does not multiply the rates; the end-of-run anneal does (the row
    # logged after step STEPS - 2 shows the rate of the last step, after the last refresh)
    tail = anneal_factor(opt.rules, STEPS - 1)
    assert 0 < tail < 1 and opt.lrs == [0.0, 0.0]
    assert rows[-2]["learning_rate/body"] == pytest.approx(opt.estimates[0] * tail, rel=1e-12)
    assert rows[-2]["learning_rate/head"] == pytest.approx(opt.estimates[1] * tail, rel=1e-12)
    last = rows[-1]
    assert last["learning_rate"] == opt.lrs[0]
    assert last["learning_rate/body"] == opt.lrs[0] and last["learning_rate/head"] == opt.lrs[1]
    assert len({r["learning_rate"] for r in rows}) > 1  # re-chosen during training
    assert seen[-2]["learning_rate/head"] == opt.lrs[1]


def test_keep_lets_the_linear_decay_multiply_the_rates(tmp_path):
    trainer, opt = _trainer(tmp_path, [HiDLRCallback(schedule="keep", step_budget=False)])
    trainer.train()
    assert opt.total_steps is None  # step_budget=False: not told the budget
    rows = _logged(trainer)
    assert rows[-1]["learning_rate"] == 0.0 and opt.lrs == [0.0, 0.0]  # linear decay to 0 at the last step
    assert 0 < rows[-2]["learning_rate"] < opt.estimates[0]


def test_a_scheduler_the_callback_cannot_hold_constant_is_refused(tmp_path):
    trainer, _ = _trainer(tmp_path, [HiDLRCallback()], scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 5))
    with pytest.raises(ValueError, match="schedule='keep'"):
        trainer.train()
    with pytest.raises(ValueError, match="schedule must be one of"):
        HiDLRCallback(schedule="linear")
    with pytest.raises(TypeError, match="loss must be callable"):
        HiDLRCallback(loss="loss")


def test_probe_data_gives_each_refresh_a_batch_of_its_own(tmp_path):
    from torch.utils.data import DataLoader
    from transformers import default_data_collator

    probe_loader = DataLoader(_Tokens(64), batch_size=16, shuffle=True, collate_fn=default_data_collator)
    drawn = []

    class Count(torch.utils.data.IterableDataset):
        def __iter__(self):
            for batch in probe_loader:
                drawn.append(batch["input_ids"])
                yield batch

    trainer, opt = _trainer(tmp_path, [HiDLRCallback(probe_data=Count())])
    with pytest.warns(UserWarning, match="held at 1"):
        trainer.train()
    assert opt.refresh_count == STEPS // 2 and len(drawn) == opt.refresh_count  # one batch a refresh
    assert opt.default_probe is None
    with pytest.raises(TypeError, match="batches must be an iterable"):
        HiDLRCallback(probe_data=5)


def test_without_the_callback_the_first_refresh_asks_for_a_probe(tmp_path):
    trainer, _ = _trainer(tmp_path, None)
    with pytest.raises(ValueError, match="needs a probe.*HiDLRCallback"):
        trainer.train()


def test_find_hidlr_unwraps_optimizer_wrappers():
    opt = HiDLR(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1))
    wrapper = type("Wrapped", (), {"optimizer": opt})()
    assert find_hidlr(wrapper) is opt and find_hidlr(opt.optimizer) is None
