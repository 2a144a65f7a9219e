import pytest
import torch

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.train import SavedActivations, predict, run_training


def test_predict_keeps_the_token_order(small_workload):
    model = M.new_model(small_workload, "mdn", 0)
    part = small_workload.test
    dist = predict(model, part, batch=7)
    with torch.no_grad():
        ref = model(part.x)
    assert torch.allclose(dist.loc, ref.loc, atol=1e-5) and torch.allclose(dist.scale, ref.scale, atol=1e-5)


def test_saved_activations_count_what_backward_keeps(small_workload):
    model = M.new_model(small_workload, "gaussian", 0)
    batch = small_workload.train.take(torch.arange(8))
    with SavedActivations(model) as full:
        model.loss(batch.x, batch.ratings)
    model.encoder.requires_grad_(False)
    with SavedActivations(model) as head_only:
        model.loss(batch.x, batch.ratings)
    assert 0 < head_only.bytes < full.bytes


@pytest.mark.parametrize("name", ["full-adam", "hidlr-lora", "schedule-free", "prodigy"])
def test_one_short_run_per_kind_of_method(small_workload, name):
    m = M.method_table(quick=True)[name]
    model = M.new_model(small_workload, "mdn", 0)
    res = run_training(m.build(model, m.grid[0] if m.grid else (m.rate or 1e-3), 3), small_workload, 3, 8, 0)
    assert res["steps"] == 3 and not res["diverged"]
    assert set(res["test"]) >= {"nll", "crps", "coverage", "tv_empirical", "disagree", "agree"}
    assert res["memory_bytes"]["total"] > res["memory_bytes"]["params"]
    if name == "hidlr-lora":
        assert res["refresh_steps"] >= 1 and set(res["influence"]) == {"lora_A", "lora_B", "head"}
