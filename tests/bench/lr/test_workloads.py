"""Workloads of the learning-rate benchmark: groupings partition the trainable parameters."""

import pytest
import torch
from torch import nn

from hidlr.bench.lr import workloads as W

EXPECTED_K = {
    "digits-mlp-bias": 2,
    "digits-cnn-bn": 2,
    "digits-mlp-head-sgd": 2,
    "digits-lora": 3,
    "mdn": 4,
    "bnn": 3,
    "multitask-heads": 25,
    "nam": 9,
    "seq-transformer": 5,
    "noisy-quadratic": 4,
    "digits-resnet-bn": 3,
    "char-gpt": 5,
    "digits-finetune": 3,
    "digits-mlp-bias-long": 2,
    "noisy-quadratic-long": 4,
}


@pytest.fixture(scope="module")
def tasks():
    return {name: wl.build(0) for name, wl in W.all_workloads().items()}


def test_registry_has_the_workloads():
    assert set(W.all_workloads()) == set(EXPECTED_K)


@pytest.mark.parametrize("name", sorted(EXPECTED_K))
def test_grouping_is_a_partition(tasks, name):
    task = tasks[name]
    W.check_partition(task.model, task.groups)  # raises on any defect
    assert len(task.groups) == EXPECTED_K[name]
    n_group = sum(p.numel() for g in task.groups for p in g["params"])
    assert n_group == sum(p.numel() for p in task.model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(EXPECTED_K))
def test_loss_and_eval_are_finite_and_seeded(tasks, name):
    wl, task = W.all_workloads()[name], tasks[name]
    batch = task.batch(torch.Generator().manual_seed(3))
    again = task.batch(torch.Generator().manual_seed(3))
    for a, b in zip(batch if isinstance(batch, tuple) else (batch,), again if isinstance(again, tuple) else (again,)):
        assert torch.equal(a, b)
    assert torch.isfinite(task.loss(task.model, batch))
    task.model.eval()
    with torch.no_grad():
        ev = task.evaluate(task.model)
    task.model.train()
    assert set(ev) == ({"loss", "acc"} if wl.has_acc else {"loss"})
    assert ev["loss"] > wl.target  # the target is not met at initialisation
    assert set(wl.ratios) <= {g["name"] for g in task.groups}  # fixed ratios name real groups
    assert wl.default_lr in wl.grid


def test_lora_freezes_the_pretrained_weights(tasks):
    model = tasks["digits-lora"].model
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(".base." in n for n in frozen)
    # LoRA B starts at zero, so the adapted layers equal the pretrained ones at initialisation
    x = torch.randn(5, 64)
    assert torch.allclose(model[0](x), model[0].base(x))


def test_check_partition_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    w0, b0, w1, b1 = model.parameters()
    with pytest.raises(ValueError, match="in no group"):
        W.check_partition(model, [{"name": "a", "params": [w0, b0, w1]}])
    with pytest.raises(ValueError, match="two groups: 'a' and 'b'"):
        W.check_partition(model, [{"name": "a", "params": [w0, b0]}, {"name": "b", "params": [w0, w1, b1]}])
    with pytest.raises(ValueError, match="unique"):
        W.check_partition(model, [{"name": "a", "params": [w0, b0]}, {"name": "a", "params": [w1, b1]}])
    with pytest.raises(ValueError, match="empty"):
        W.check_partition(model, [{"name": "a", "params": [w0, b0, w1, b1]}, {"name": "b", "params": []}])
    with pytest.raises(ValueError, match="not a parameter of the model"):
        W.check_partition(model, [{"name": "a", "params": [w0, b0, w1, b1, nn.Parameter(torch.ones(1))]}])


def test_unknown_workload_is_named():
    with pytest.raises(ValueError, match="no-such"):
        W.get(["no-such"])
