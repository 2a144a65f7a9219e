"""Param-group builders: each returns ``list[dict]`` ready for a torch optimizer, one dict per Hi-DLR
group, each with ``"params"`` and a ``"name"``. Every builder checks that the groups partition the
model's trainable parameters (no parameter twice, none left out); :func:`check_partition` does the
same for groups built by hand. Extra keys (``lr``, ``weight_decay``, ...) may be added to any dict.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_RMS_NORM = getattr(nn, "RMSNorm", None)
if _RMS_NORM is not None:
    _NORM_TYPES = (*_NORM_TYPES, _RMS_NORM)


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _build(model: nn.Module, named: Mapping[str, list[nn.Parameter]]) -> list[dict]:
    groups = [{"name": name, "params": params} for name, params in named.items() if params]
    if not groups:
        raise ValueError("the model has no trainable parameters (none, or all with requires_grad=False)")
    check_partition(model, groups)
    return groups


def check_partition(model: nn.Module, groups: Sequence[Mapping]) -> None:
    """Raise ValueError unless ``groups`` hold every trainable parameter of ``model`` exactly once
    (and nothing that is not one of its parameters)."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen: dict[int, str] = {}
    for k, g in enumerate(groups):
        if not isinstance(g, Mapping) or "params" not in g:
            raise ValueError(f"groups[{k}] must be a dict with 'params' (and a 'name'), got {g!r}")
        params = g["params"]
        params = [params] if isinstance(params, nn.Parameter) else list(params)
        gname = g.get("name", "?")
        for p in params:
            if id(p) not in names:
                what = f"a tensor of shape {tuple(p.shape)}" if hasattr(p, "shape") else f"a {type(p).__name__}"
                raise ValueError(f"group {gname!r} holds {what} that is not a parameter of the model")
            if id(p) in seen:
                raise ValueError(f"parameter {names[id(p)]!r} is in two groups: {seen[id(p)]!r} and {gname!r}")
            seen[id(p)] = gname
    missing = [n for n, p in _trainable(model) if id(p) not in seen]
    if missing:
        raise ValueError(f"trainable parameters in no group: {', '.join(missing)}")


def single(model: nn.Module, name: str = "all") -> list[dict]:
    """One group with every trainable parameter (Hi-DLR is then GeN)."""
    return _build(model, {name: [p for _, p in _trainable(model)]})


def by_layer(model: nn.Module, depth: int | None = None) -> list[dict]:
    """One group per module that owns parameters directly (``depth=None``), or per module at the
    given depth of the module tree (``depth=1``: the model's children)."""
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
            raise TypeError(f"depth must be a positive int or None, got {type(depth).__name__} {depth!r}")
        if depth < 1:
            raise ValueError(f"depth must be a positive int or None, got {depth}")
        depth = int(depth)
    named: dict[str, list[nn.Parameter]] = {}
    for pname, p in _trainable(model):
        parts = pname.split(".")[:-1]
        key = ".".join(parts if depth is None else parts[:depth]) or "<root>"
        named.setdefault(key, []).append(p)
    return _build(model, named)


def by_parameter(model: nn.Module) -> list[dict]:
    """One group per trainable parameter tensor, named by the parameter (a layer's weight and bias
    apart: the finest grouping, for influence rankings and freezing plans that may keep a bias
    without its weight)."""
    return _build(model, {name: [p] for name, p in _trainable(model)})


def by_kind(model: nn.Module) -> list[dict]:
    """Three groups: weights, biases, and normalisation-layer parameters ("norm")."""
    norm_ids = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    named: dict[str, list[nn.Parameter]] = {"weight": [], "bias": [], "norm": []}
    for pname, p in _trainable(model):
        if id(p) in norm_ids:
            named["norm"].append(p)
        elif pname.rsplit(".", 1)[-1] == "bias":
            named["bias"].append(p)
        else:
            named["weight"].append(p)
    return _build(model, named)


def head_body(model: nn.Module, head: str | nn.Module | Iterable[str | nn.Module]) -> list[dict]:
    """Two groups: ``"body"`` and ``"head"``, the head given by submodule name(s) or module(s)."""
    if not isinstance(head, (str, nn.Module, Iterable)):
        raise TypeError(f"head must be a submodule's name or module, or a list of them, got {type(head).__name__}")
    heads = [head] if isinstance(head, (str, nn.Module)) else list(head)
    modules = dict(model.named_modules())
    own = {id(m) for m in modules.values()}
    head_ids = set()
    for h in heads:
        if isinstance(h, str):
            if h not in modules:
                raise ValueError(f"no submodule named {h!r}; submodules: {', '.join(n for n in modules if n)}")
            h = modules[h]
        elif not isinstance(h, nn.Module):
            raise TypeError(f"head must be submodule names or modules, got {type(h).__name__} {h!r}")
        elif id(h) not in own:
            raise ValueError(f"the head {type(h).__name__} is not a submodule of the model")
        head_ids |= {id(p) for p in h.parameters()}
    if not head_ids:
        raise ValueError("the head has no parameters")
    trainable = _trainable(model)
    return _build(
        model,
        {
            "body": [p for _, p in trainable if id(p) not in head_ids],
            "head": [p for _, p in trainable if id(p) in head_ids],
        },
    )


def _compile(group: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"pattern {pattern!r} of group {group!r} is not a regular expression: {err}") from err


def by_pattern(model: nn.Module, patterns: Mapping[str, str | Sequence[str]], rest: str | None = "rest") -> list[dict]:
    """Groups by regular expressions on parameter names (``re.search``), first match wins; the
    parameters no pattern matches go to ``rest`` (or, with ``rest=None``, are an error)."""
    if not isinstance(patterns, Mapping):
        raise TypeError(f"patterns must map group names to regular expressions, got {type(patterns).__name__}")
    for name, pats in patterns.items():
        if not (isinstance(pats, str) or (isinstance(pats, Sequence) and all(isinstance(q, str) for q in pats))):
            raise TypeError(f"patterns[{name!r}] must be a regular expression (str) or a list of them, got {pats!r}")
    if rest is not None and rest in patterns:
        raise ValueError(
            f"group {rest!r} is both in patterns and rest= (the group of unmatched parameters): rename one"
        )
    compiled = {
        name: [_compile(name, p) for p in ([pats] if isinstance(pats, str) else pats)]
        for name, pats in patterns.items()
    }
    named: dict[str, list[nn.Parameter]] = {name: [] for name in compiled}
    unmatched = []
    for pname, p in _trainable(model):
        for gname, regs in compiled.items():
            if any(r.search(pname) for r in regs):
                named[gname].append(p)
                break
        else:
            unmatched.append((pname, p))
    if unmatched and rest is None:
        raise ValueError(f"parameters matching no pattern: {', '.join(n for n, _ in unmatched)}")
    if rest is not None:
        named[rest] = [p for _, p in unmatched]
    empty = [g for g, ps in named.items() if not ps and g != rest]
    if empty:
        raise ValueError(f"patterns matched no parameter for group(s): {', '.join(empty)}")
    return _build(model, named)


def _peft_lora_ids(model: nn.Module) -> tuple[set[int], set[int]]:
    """Ids of the A and B parameters of ``peft``'s LoRA layers in ``model`` (empty without peft)."""
    import sys

    if "peft" not in sys.modules:  # a model holding peft layers has imported peft already
        return set(), set()
    from peft.tuners.lora import LoraLayer

    a_ids: set[int] = set()
    b_ids: set[int] = set()
    for m in model.modules():
        if isinstance(m, LoraLayer):
            for attr, ids in (
                ("lora_A", a_ids),
                ("lora_embedding_A", a_ids),
                ("lora_B", b_ids),
                ("lora_embedding_B", b_ids),
            ):
                sub = getattr(m, attr, None)
                if sub is not None:
                    ids |= {id(p) for p in sub.parameters()}
    return a_ids, b_ids


def lora(model: nn.Module, a: str = r"lora_A", b: str = r"lora_B", rest: str | None = "rest") -> list[dict]:
    """LoRA+-style groups: ``"lora_A"``, ``"lora_B"`` and the remaining trainable parameters (e.g. a
    new head) as ``rest``. ``peft``'s LoRA layers are recognised by type (A and B of linear and
    embedding adapters); otherwise A and B are found by the name patterns ``a`` and ``b``."""
    a_ids, b_ids = _peft_lora_ids(model)
    if not a_ids and not b_ids:
        return by_pattern(model, {"lora_A": a, "lora_B": b}, rest=rest)
    named: dict[str, list[nn.Parameter]] = {"lora_A": [], "lora_B": []}
    others = []
    for pname, p in _trainable(model):
        if id(p) in a_ids:
            named["lora_A"].append(p)
        elif id(p) in b_ids:
            named["lora_B"].append(p)
        else:
            others.append(pname)
            named.setdefault(rest or "rest", []).append(p)
    if not named["lora_A"] or not named["lora_B"]:
        raise ValueError("the model's peft LoRA layers have no trainable A or B parameters")
    if others and rest is None:
        raise ValueError(f"parameters outside the LoRA layers: {', '.join(others)}")
    return _build(model, named)


def in_forward_order(groups: Sequence[Mapping], model: nn.Module, *inputs: Any, **kwargs: Any) -> list[dict]:
    """``groups`` sorted by when one forward pass ``model(*inputs, **kwargs)`` first calls a module
    that owns one of their parameters; groups it never reaches go last, in their order (the sort is
    stable). The builders above order groups as the model registers its modules, which is not
    always the order they run (a head defined before the trunk); a freezing plan's ``max_reach``
    (:func:`hidlr.influence.plan_for`) reads the groups in this order.

    The pass runs under ``torch.no_grad`` with every module in eval mode (no BatchNorm statistics
    change, no dropout draw), and each module's mode is restored after it. A parameter counts as
    reached when the module owning it is called (a forward pre-hook), not where its tensor is used.
    """
    check_partition(model, groups)
    owner: dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner.setdefault(id(p), module)
    first_call: dict[nn.Module, int] = {}
    modes = {m: m.training for m in model.modules()}

    def record(module: nn.Module, _args: Any) -> None:  # a pre-hook that returns None leaves the inputs
        first_call.setdefault(module, len(first_call))

    handles = [m.register_forward_pre_hook(record) for m in set(owner.values())]
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training

    def position(item: tuple[int, Mapping]) -> tuple[float, int]:
        k, g = item
        params = g["params"]
        params = [params] if isinstance(params, nn.Parameter) else params
        calls = [first_call[owner[id(p)]] for p in params if owner[id(p)] in first_call]
        return (min(calls) if calls else math.inf, k)

    return [dict(g) for _, g in sorted(enumerate(groups), key=position)]
