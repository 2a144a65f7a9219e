"""Fine-tuning workloads: the VADER lexicon encoded for an encoder, and a pretrained starting point.

- ``real``: all-MiniLM-L6-v2 (from its PyPI package) on the full lexicon.
- ``quick``: a small BERT of the same family, pretrained inside the benchmark on a source task
  (the mean rating of alphabetic words, squared error) and adapted to a shifted target task (the
  distribution of a rater's score, words and emoticons alike). Minutes on a CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hidlr.bench.finetune.model import Encoded, encode
from hidlr.bench.finetune.pretrained import load_minilm, load_tokenizer, tiny_bert
from hidlr.uq.data.lexicon import Lexicon, load_lexicon, split_lexicon


@dataclass
class Part:
    """Encoded tokens with their ratings ``(n, R)`` (float32)."""

    x: Encoded
    ratings: Tensor

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: Tensor) -> Part:
        return Part(self.x.take(index), self.ratings[index])


@dataclass
class Workload:
    """A pretrained encoder (never trained in place: methods copy it) and the split data."""

    name: str
    encoder: nn.Module
    train: Part
    val: Part
    test: Part
    probe: Part  # a fixed training batch for Hi-DLR's probes
    description: str

    def fresh_encoder(self) -> nn.Module:
        return copy.deepcopy(self.encoder)


def _part(tokenizer, lex: Lexicon) -> Part:
    return Part(encode(tokenizer, lex.tokens), lex.ratings.float())


def _parts(tokenizer, lex: Lexicon, split_seed: int, probe_size: int) -> tuple[Part, Part, Part, Part]:
    split = split_lexicon(lex, val=0.1, test=0.2, seed=split_seed)
    train, val, test = (_part(tokenizer, s) for s in (split.train, split.val, split.test))
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed + 1))[:probe_size]
    return train, val, test, train.take(idx)


def length_batches(part: Part, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless batches of indices of similar sequence length (little padding), in a seeded
    random order, reshuffled every epoch."""
    lengths = part.x.mask.sum(1)
    gen = torch.Generator().manual_seed(seed)
    while True:
        jitter = torch.rand(len(part), generator=gen)  # random order within a length
        order = torch.argsort(lengths.double() + 0.5 * jitter)
        chunks = list(order.split(batch_size))
        for i in torch.randperm(len(chunks), generator=gen).tolist():
            yield chunks[i]


def real_workload(split_seed: int = 0, probe_size: int = 128) -> Workload:
    """All-MiniLM-L6-v2 on the whole lexicon (70 / 10 / 20 token split)."""
    tokenizer = load_tokenizer()
    train, val, test, probe = _parts(tokenizer, load_lexicon(), split_seed, probe_size)
    return Workload(
        "minilm",
        load_minilm(),
        train,
        val,
        test,
        probe,
        "all-MiniLM-L6-v2 (22.6M parameters, pretrained) on the VADER lexicon",
    )


def _pretrain(encoder: nn.Module, part: Part, steps: int, seed: int) -> None:
    """Source task: squared error of the mean rating (a linear readout of mean-pooled states)."""
    readout = nn.Linear(encoder.config.hidden_size, 1)
    opt = torch.optim.Adam([*encoder.parameters(), *readout.parameters()], lr=1e-3)
    target = part.ratings.mean(1) / 2.0
    batches = length_batches(part, 64, seed)
    for _ in range(steps):
        idx = next(batches)
        x = part.x.take(idx)
        h = encoder(input_ids=x.ids, attention_mask=x.mask).last_hidden_state
        m = x.mask.unsqueeze(-1).float()
        pred = readout((h * m).sum(1) / m.sum(1)).squeeze(-1)
        loss = (pred - target[idx]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def quick_workload(split_seed: int = 0, probe_size: int = 128, pretrain_steps: int = 300) -> Workload:
    """A 2-layer BERT of width 64 (MiniLM's tokenizer and vocabulary), pretrained here on the mean
    rating of alphabetic training words, then handed over for the full task."""
    tokenizer = load_tokenizer()
    train, val, test, probe = _parts(tokenizer, load_lexicon(), split_seed, probe_size)
    lex_train = split_lexicon(load_lexicon(), val=0.1, test=0.2, seed=split_seed).train
    words = torch.tensor([i for i, t in enumerate(lex_train.tokens) if t.isalpha()])
    encoder = tiny_bert(
        seed=split_seed,
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(split_seed)
        _pretrain(encoder, train.take(words), pretrain_steps, split_seed)
    return Workload(
        "quick",
        encoder,
        train,
        val,
        test,
        probe,
        f"2-layer BERT (width 64), pretrained here for {pretrain_steps} steps on the mean rating "
        "of alphabetic words, adapted to the rating distribution of all tokens",
    )
