"""One fine-tuning run: the training loop with per-step timing, accounted memory, and test scores."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from hidlr.bench.finetune.data import Part, Workload, length_batches
from hidlr.bench.finetune.model import TokenDistributionModel
from hidlr.optim import HiDLR
from hidlr.uq.data.lexicon import disagreement, score_ratings
from hidlr.uq.distributions import GaussianMixture


@dataclass
class Setup:
    """A method instantiated on a model: its optimizer and hooks.

    ``before_eval`` / ``after_eval`` wrap evaluation (Schedule-Free's eval/train switch);
    ``at_step`` maps a step number to a callback run before that step (e.g. freezing by a plan).
    """

    model: TokenDistributionModel
    optimizer: torch.optim.Optimizer
    before_eval: Callable[[], None] | None = None
    after_eval: Callable[[], None] | None = None
    at_step: dict[int, Callable[[], None]] = field(default_factory=dict)
    lr: float | None = None


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _nbytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, Tensor):
            key = (t.untyped_storage().data_ptr(), t.device)
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total


def optimizer_state_bytes(opt: torch.optim.Optimizer) -> int:
    inner = opt.optimizer if isinstance(opt, HiDLR) else opt
    return _nbytes(v for st in inner.state.values() for v in st.values())


class SavedActivations:
    """Context manager: bytes of the (non-parameter) tensors autograd saves for backward."""

    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.keys: set[tuple[int, Any]] = set()
        self.bytes = 0

    def _pack(self, t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        key = (ptr, t.device)
        if ptr not in self.params and key not in self.keys:
            self.keys.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self) -> SavedActivations:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def predict(model: TokenDistributionModel, part: Part, batch: int = 256) -> GaussianMixture:
    """The predictive mixtures of all of ``part``'s tokens (in order), without gradients."""
    order = torch.argsort(part.x.mask.sum(1))  # similar lengths together: little padding
    pieces = []
    with torch.no_grad():
        for idx in order.split(batch):
            d = model(part.x.take(idx))
            pieces.append((idx, d.logits, d.loc, d.scale))
    inverse = torch.argsort(torch.cat([p[0] for p in pieces]))
    cat = [torch.cat([p[i] for p in pieces])[inverse] for i in (1, 2, 3)]
    return GaussianMixture(*cat, validate_args=False)


def evaluate(model: TokenDistributionModel, part: Part) -> dict[str, Any]:
    """Scores on all tokens, and on the tokens whose raters disagree most / least (split at the
    median rater standard deviation)."""
    dist = predict(model, part)
    r = part.ratings.double()
    out: dict[str, Any] = dict(score_ratings(dist, r, level=0.9))
    spread = disagreement(r)
    high = spread > spread.median()
    for name, mask in (("disagree", high), ("agree", ~high)):
        idx = torch.nonzero(mask).squeeze(1)
        out[name] = score_ratings(dist[idx], r[idx], level=0.9)
    return out


def run_training(
    setup: Setup,
    wl: Workload,
    steps: int,
    batch_size: int,
    seed: int,
    tick: Callable[[], None] | None = None,
    start: int = 0,
    score: bool = True,
) -> dict[str, Any]:
    """Train for ``steps`` steps and score on validation and test (``score``); ``start``: the number
    of batches an earlier phase of the same run has used (this phase continues after them).

    Per step: wall-clock of zero_grad + forward + backward + step (probes included on Hi-DLR's
    refresh steps). Memory, measured on the last step: parameters + gradients + optimizer state +
    activations saved for backward (``torch.cuda.max_memory_allocated`` on CUDA as well).
    """
    model, opt = setup.model, setup.optimizer
    device = next(model.parameters()).device
    probe_part = wl.probe

    def probe() -> Tensor:
        return model.loss(probe_part.x, probe_part.ratings)

    batches = length_batches(wl.train, batch_size, seed)
    for _ in range(start):
        next(batches)
    times, refresh, losses = [], [], []
    trainable_at: dict[int, int] = {}
    memory: dict[str, int] = {}
    diverged = False
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for t in range(steps):
        if t in setup.at_step:
            setup.at_step[t]()
            trainable_at[t] = trainable_params(model)
        batch = wl.train.take(next(batches))
        last = t == steps - 1
        is_refresh = isinstance(opt, HiDLR) and opt.is_refresh_step()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        saved = SavedActivations(model) if last else None
        if saved is not None:
            with saved:
                loss = model.loss(batch.x, batch.ratings)
        else:
            loss = model.loss(batch.x, batch.ratings)
        if not bool(torch.isfinite(loss)):
            diverged = True
            break
        loss.backward()
        if isinstance(opt, HiDLR):
            opt.step(probe=probe)
        else:
            opt.step()
        times.append(time.perf_counter() - t0)
        refresh.append(is_refresh)
        losses.append(float(loss.detach()))
        if saved is not None:
            grads = _nbytes(p.grad for p in model.parameters() if p.grad is not None)
            memory = {
                "params": _nbytes(model.parameters()),
                "grads": grads,
                "optimizer_state": optimizer_state_bytes(opt),
                "activations": saved.bytes,
            }
            memory["total"] = sum(memory.values())
            if device.type == "cuda":
                memory["cuda_peak"] = int(torch.cuda.max_memory_allocated(device))
        if tick is not None:
            tick()
    plain = [s for s, r in zip(times, refresh) if not r] or times
    out: dict[str, Any] = {
        "steps": len(times),
        "diverged": diverged,
        "trainable_params": trainable_params(model),
        "trainable_at": trainable_at,
        "train_seconds": sum(times),
        "step_seconds_median": float(torch.tensor(plain).median()) if plain else math.nan,
        "step_seconds_mean": sum(times) / len(times) if times else math.nan,
        "refresh_steps": int(sum(refresh)),
        "memory_bytes": memory,
        "train_loss_last": float(sum(losses[-10:]) / len(losses[-10:])) if losses else math.nan,
    }
    if isinstance(opt, HiDLR):
        out["rates"] = [
            {"step": rec["step"], "rates": {g["name"]: g["estimate"] for g in rec["groups"]}} for rec in opt.history
        ]
        out["influence"] = dict(zip([str(g.get("name", k)) for k, g in enumerate(opt.param_groups)], opt.influence))
    if diverged or not score:
        return out
    if setup.before_eval:
        setup.before_eval()
    model.eval()
    out["val"] = evaluate(model, wl.val)
    out["test"] = evaluate(model, wl.test)
    model.train()
    if setup.after_eval:
        setup.after_eval()
    return out
