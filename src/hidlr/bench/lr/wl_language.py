"""Character language model workload on text that ships with Python (no download).

- ``char-gpt``: a two-layer GPT-style decoder (pre-norm, causal self-attention, GELU MLP, learned
  positions) predicting the next character of the source of two standard-library modules
  (``textwrap`` and ``difflib``, read with :func:`inspect.getsource`); groups embeddings /
  attention / MLP / norms / head (K=5), Adam. Validation: cross-entropy in nats per character on a
  held-out tail of the corpus.

The corpus is fixed by the Python version; its SHA-256 is part of the workload's description, so a
result states which text it was measured on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect

import torch
from torch import nn

from hidlr.bench.lr.workloads import ADAM_GRID, Task, Workload, by_predicate, register

CORPUS_MODULES = ("textwrap", "difflib")
# Printable ASCII and newline; any other character is mapped to "?".
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
CONTEXT = 32
VAL_FRACTION = 0.1
N_VAL_WINDOWS = 128


@functools.lru_cache(maxsize=1)
def corpus() -> str:
    """The concatenated source of :data:`CORPUS_MODULES`, tabs expanded, other characters as "?"."""
    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in CORPUS_MODULES).expandtabs(4)
    allowed = set(ALPHABET)
    return "".join(c if c in allowed else "?" for c in text)


def corpus_digest() -> str:
    """First 12 hex digits of the SHA-256 of :func:`corpus`."""
    return hashlib.sha256(corpus().encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def encoded() -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus as token ids: (train (N_train,), validation (N_val,)), split at a fixed point."""
    index = {c: i for i, c in enumerate(ALPHABET)}
    ids = torch.tensor([index[c] for c in corpus()], dtype=torch.long)
    cut = int(len(ids) * (1 - VAL_FRACTION))
    return ids[:cut], ids[cut:]


def windows(ids: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, CONTEXT) and next-character targets (B, CONTEXT) of the windows at ``starts`` (B,)."""
    span = starts[:, None] + torch.arange(CONTEXT + 1)
    seq = ids[span]
    return seq[:, :-1], seq[:, 1:]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: (B, T, d) -> (B, T, d)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d={d} is not divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, d/H)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)); (B, T, d) -> (B, T, d)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """GPT-style decoder: token ids (B, T <= CONTEXT) -> next-token logits (B, T, vocab)."""

    def __init__(self, vocab: int = len(ALPHABET), d: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(CONTEXT, d) * 0.02)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln_f(self.blocks(self.tok(idx) + self.pos[: idx.shape[1]])))


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of a batch of windows (B, T) -> scalar."""
    x, y = batch
    logits = model(x)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _build_char_gpt(seed: int) -> Task:
    train, val = encoded()
    # Validation: N_VAL_WINDOWS evenly spaced windows of the held-out tail (the same for every seed).
    val_starts = torch.linspace(0, len(val) - CONTEXT - 1, N_VAL_WINDOWS).long()
    xva, yva = windows(val, val_starts)
    torch.manual_seed(seed)
    model = CharGPT()

    def draw(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return windows(train, torch.randint(0, len(train) - CONTEXT - 1, (32,), generator=gen))

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(xva)
        return {"loss": float(lm_loss(m, (xva, yva))), "acc": float((logits.argmax(-1) == yva).float().mean())}

    groups = by_predicate(
        model,
        [
            ("embed", lambda n, p: n.startswith(("tok", "pos"))),
            ("attn", lambda n, p: ".attn." in n),
            ("mlp", lambda n, p: ".mlp." in n),
            ("norm", lambda n, p: ".ln" in n or n.startswith("ln_f")),
        ],
        rest="head",
    )
    return Task(model, groups, draw, lm_loss, evaluate)


register(
    Workload(
        "char-gpt",
        f"2-layer GPT (d=64, 4 heads, context {CONTEXT}) on the source of Python's "
        f"{' + '.join(CORPUS_MODULES)} (sha256 {corpus_digest()}); embed / attn / mlp / norm / head "
        "(K=5); Adam; val = nats per char",
        _build_char_gpt,
        "adam",
        1e-3,
        ADAM_GRID,
        steps=600,
        quick_steps=100,
        batch_size=32,
        target=2.0,
        ratios={"embed": 10.0},
        has_acc=True,
    )
)
