"""Fine-tuning methods: which parameters train, with which optimizer and rates.

Every method starts from a fresh copy of the workload's pretrained encoder with a new head
(``"mdn"``: 3 components; ``"gaussian"``: 1). Rates in a method's grid are tuned on validation NLL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hidlr import groups
from hidlr.bench.finetune.data import Workload
from hidlr.bench.finetune.model import TokenDistributionModel
from hidlr.bench.finetune.train import Setup
from hidlr.optim import HiDLR

HEADS = {"mdn": 3, "gaussian": 1}
LORA_RANK = 8
LORA_TARGETS = ("query", "key", "value", "dense")  # every linear map of a BERT block
LORA_PLUS_RATIO = 16.0
HIDLR_START = 1e-4  # Hi-DLR's starting rate for every group (it then chooses its own)


def new_model(wl: Workload, head: str, seed: int) -> TokenDistributionModel:
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TokenDistributionModel(wl.fresh_encoder(), components=HEADS[head])


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def add_lora(model: TokenDistributionModel, rank: int = LORA_RANK) -> TokenDistributionModel:
    """LoRA adapters (``peft``) on every linear map of the encoder; the head stays trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
    inject_adapter_in_model(cfg, model.encoder)  # freezes everything but the adapters
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model


def layer_groups(model: TokenDistributionModel) -> list[dict]:
    """One group per transformer block, plus the embeddings and the head."""
    n = model.encoder.config.num_hidden_layers
    pats = {
        "embeddings": r"^encoder\.embeddings\.",
        **{f"layer{i}": rf"\.layer\.{i}\." for i in range(n)},
        "head": r"^head\.",
    }
    return groups.by_pattern(model, pats, rest=None)


def module_groups(model: TokenDistributionModel) -> list[dict]:
    """One group per module that owns parameters (each linear map, each LayerNorm, each embedding)."""
    return groups.by_layer(model)


def parameter_groups(model: TokenDistributionModel) -> list[dict]:
    """One group per parameter tensor (a linear map's weight and bias apart)."""
    return groups.by_parameter(model)


def lora_parameter_groups(model: TokenDistributionModel) -> list[dict]:
    """LoRA adapters on every linear map (:func:`add_lora`, once) and every parameter trainable: one
    group per tensor of the pretrained model and one per adapter (its A and B together), so that a
    plan chooses which adapters to train beside biases, norms and whole tensors. The adapters come
    after every tensor, not in forward order: sort with :func:`hidlr.groups.in_forward_order` before
    planning with ``max_reach``."""
    if not any(".lora_A." in name for name, _ in model.named_parameters()):
        add_lora(model)
    model.requires_grad_(True)
    adapters: dict[str, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        for part in (".lora_A.", ".lora_B."):
            if part in name:
                adapters.setdefault(name.split(part)[0] + ".lora", []).append(p)
    taken = {id(p) for ps in adapters.values() for p in ps}
    rest = [g for g in groups.by_parameter(model) if not any(id(p) in taken for p in g["params"])]
    return rest + [{"params": ps, "name": name} for name, ps in adapters.items()]


FREEZE_GROUPINGS = {"modules": module_groups, "parameters": parameter_groups, "lora-parameters": lora_parameter_groups}
"""Groupings the influence run may rank (``run_freezing(grouping=...)``; compared in
``benchmarks/diagnosis/freeze5.py``, the benchmark ranks modules)."""


def head_group_names(param_groups: list[dict]) -> list[str]:
    return [g["name"] for g in param_groups if g["name"].startswith("head")]


# --------------------------------------------------------------------------------------- builders
def full_adam(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    return Setup(model, torch.optim.Adam(_trainable(model), lr=lr), lr=lr)


def last_layer(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    model.encoder.requires_grad_(False)
    return Setup(model, torch.optim.Adam(_trainable(model), lr=lr), lr=lr)


def bitfit(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    for name, p in model.encoder.named_parameters():
        p.requires_grad_(name.endswith(".bias"))
    return Setup(model, torch.optim.Adam(_trainable(model), lr=lr), lr=lr)


def lora(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    add_lora(model)
    return Setup(model, torch.optim.Adam(_trainable(model), lr=lr), lr=lr)


def lora_plus(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    add_lora(model)
    gs = groups.lora(model, rest="head")
    for g in gs:
        g["lr"] = lr * (LORA_PLUS_RATIO if g["name"] == "lora_B" else 1.0)
    return Setup(model, torch.optim.Adam(gs, lr=lr), lr=lr)


def hidlr_layers(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    return Setup(model, HiDLR(torch.optim.Adam(layer_groups(model), lr=lr), total_steps=steps), lr=lr)


def hidlr_lora(model: TokenDistributionModel, lr: float, steps: int, budget: bool = True) -> Setup:
    """Hi-DLR on LoRA's A, B and the head; ``budget``: told the run's step budget (``total_steps``)."""
    add_lora(model)
    opt = HiDLR(torch.optim.Adam(groups.lora(model, rest="head"), lr=lr), total_steps=steps if budget else None)
    return Setup(model, opt, lr=lr)


def hidlr_lora_no_budget(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    return hidlr_lora(model, lr, steps, budget=False)


def hidlr_modules(model: TokenDistributionModel, lr: float, steps: int, every: int, grouping: str = "modules") -> Setup:
    """Hi-DLR over the groups of ``grouping`` (a key of :data:`FREEZE_GROUPINGS`), refreshing every
    ``every`` steps and fitting every group at each refresh (the influence run)."""
    param_groups = FREEZE_GROUPINGS[grouping](model)
    opt = HiDLR(torch.optim.Adam(param_groups, lr=lr), every=every, max_groups=None, groups_per_refresh=None)
    return Setup(model, opt, lr=lr)


def prodigy(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    opt = importlib.import_module("prodigyopt").Prodigy(_trainable(model), lr=1.0)
    return Setup(model, opt, lr=1.0)


def schedule_free(model: TokenDistributionModel, lr: float, steps: int) -> Setup:
    opt = importlib.import_module("schedulefree").AdamWScheduleFree(
        _trainable(model), lr=lr, warmup_steps=max(1, steps // 10)
    )
    opt.train()
    return Setup(model, opt, before_eval=opt.eval, after_eval=opt.train, lr=lr)


@dataclass(frozen=True)
class Method:
    """A method: ``grid`` rates are tuned on validation NLL; ``rate_from`` takes the tuned rate of
    another method (runs spent: its own one run); neither: one run at ``rate``."""

    name: str
    description: str
    build: Callable[[TokenDistributionModel, float, int], Setup]
    grid: tuple[float, ...] = ()
    rate: float | None = None
    rate_from: str | None = None


def method_table(quick: bool) -> dict[str, Method]:
    """The line-up (grids are shifted up for the small quick model, which needs larger rates)."""
    s = 10.0 if quick else 1.0
    ms = [
        Method("full-adam", "full fine-tuning, Adam, tuned rate", full_adam, grid=(3e-5 * s, 1e-4 * s, 3e-4 * s)),
        Method("last-layer", "head only (encoder frozen), Adam, tuned rate", last_layer, grid=(1e-3, 3e-3)),
        Method("bitfit", "BitFit: encoder biases + head, Adam, tuned rate", bitfit, grid=(3e-4 * s, 1e-3 * s)),
        Method(
            "lora",
            f"LoRA r={LORA_RANK} (peft) on every linear map + head, Adam, tuned rate",
            lora,
            grid=(3e-4, 1e-3, 3e-3),
        ),
        Method(
            "lora-plus",
            f"LoRA+: B at {LORA_PLUS_RATIO:g}x A's rate, A and head at LoRA's tuned rate",
            lora_plus,
            rate_from="lora",
        ),
        Method(
            "hidlr-layers",
            "Hi-DLR(Adam), full model, one group per block + embeddings + head, told the step budget",
            hidlr_layers,
            rate=HIDLR_START * s,
        ),
        Method(
            "hidlr-lora",
            "Hi-DLR(Adam) on LoRA: groups A, B, head, told the step budget",
            hidlr_lora,
            rate=HIDLR_START * s,
        ),
        Method(
            "hidlr-lora-no-budget",
            "Hi-DLR(Adam) on LoRA, not told the step budget (rates may grow throughout)",
            hidlr_lora_no_budget,
            rate=HIDLR_START * s,
        ),
        Method("prodigy", "Prodigy (prodigyopt), lr=1.0, full model", prodigy, rate=1.0),
        Method(
            "schedule-free",
            "Schedule-Free AdamW at full fine-tuning's tuned rate, 10% warmup",
            schedule_free,
            rate_from="full-adam",
        ),
    ]
    return {m.name: m for m in ms}


FREEZE_BUDGETS = (0.01, 0.05, 0.2)
