"""A small workload: 300 lexicon tokens and a tiny randomly initialised BERT (MiniLM's tokenizer)."""

import pytest
import torch

from hidlr.bench.finetune.data import Workload, _part
from hidlr.bench.finetune.pretrained import load_tokenizer, tiny_bert
from hidlr.uq.data.lexicon import load_lexicon, split_lexicon


@pytest.fixture(scope="session")
def small_workload() -> Workload:
    tokenizer = load_tokenizer()
    split = split_lexicon(load_lexicon(limit=300), val=0.2, test=0.2, seed=0)
    train, val, test = (_part(tokenizer, s) for s in (split.train, split.val, split.test))
    encoder = tiny_bert(
        seed=0, vocab_size=tokenizer.vocab_size, hidden_size=16, num_attention_heads=2, intermediate_size=32
    )
    return Workload("small", encoder, train, val, test, train.take(torch.arange(16)), "test workload")
