"""HiDLR's checkpoint format: build, validate and load its state dict, and an atomic file save.

A state dict is ``{"base": <the base optimizer's state dict>, "hidlr": {...}}``. The ``hidlr`` part
holds a format version, the configuration it was made under (mode, period, design, probes, seed,
rule options, and per group its name, parameter count and size) and every piece of running state
(estimates, step, refresh schedule, refresh counter, the loss's rounding unit, the last
``history_size`` refresh records). Loading validates the whole dict, base optimizer part included,
before anything changes; a different grouping is refused, other configuration differences warn. An
optimizer without a step budget (``total_steps=None``) takes the checkpoint's: a resumed run keeps it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hidlr.optim.options import check_total_steps

if TYPE_CHECKING:
    from hidlr.optim.hidlr import HiDLR

FORMAT_VERSION = 6
_RUNNING = ("estimates", "wrap_lrs", "t", "period", "next_refresh", "history")
# counters (ints >= 0) and flags (bools) by the format from which a state dict must hold them; an
# older format may lack them (added later), and then they load as 0 and False
_COUNTERS = {
    "probe_forwards": 3,
    "last_forwards": 3,
    "travel_refreshes": 3,
    "travel_forwards": 3,
    "arrival_refreshes": 4,
    "arrival_forwards": 5,
}
_FLAGS = {"travelling": 3, "arrived": 3, "restarted": 4}


def _config(opt: HiDLR) -> dict[str, Any]:
    rules = dataclasses.asdict(opt.rules)
    rules["clip"] = None if rules["clip"] is None else list(rules["clip"])
    return {
        "every": opt.every,
        "design": opt.design,
        "probes": list(opt.probes),
        "seed": opt.seed,
        "max_every": opt.max_every,
        "groups_per_refresh": opt.groups_per_refresh,
        "rules": rules,
        "groups": [
            {"name": str(g.get("name", k)), "params": len(g["params"]), "size": sum(p.numel() for p in g["params"])}
            for k, g in enumerate(opt.param_groups)
        ],
    }


def build_state(opt: HiDLR) -> dict[str, Any]:
    """The ``hidlr`` part of :meth:`HiDLR.state_dict` (a deep copy: later steps do not change it)."""
    return {
        "format": FORMAT_VERSION,
        "config": _config(opt),
        "estimates": list(opt._estimates),
        "wrap_lrs": list(opt._wrap_lrs),
        "t": opt._t,
        "period": opt._period,
        "next_refresh": opt._next_refresh,
        "refreshes": opt._refreshes,
        "loss_eps": opt._loss_eps,
        "last_probed": list(opt._last_probed),
        "probe_forwards": opt._probe_forwards,
        "last_forwards": opt._last_forwards,
        "travelling": opt._travelling,
        "arrived": opt._arrived,
        "restarted": opt._growing,
        "travel_refreshes": opt._travel_refreshes,
        "arrival_refreshes": opt._arrival_refreshes,
        "arrival_forwards": opt._arrival_forwards,
        "travel_forwards": opt._uncredited_forwards,  # key kept from when only travel was uncredited
        "growth": None
        if opt._growth_before is None
        else {"before": list(opt._growth_before), "lowest": opt._growth_low},
        "history": copy.deepcopy(opt.history[-opt.history_size :] if opt.history_size else []),
    }


def _number(own: dict[str, Any], key: str, integral: bool) -> None:
    v = own[key]
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(v, bool) or not isinstance(v, kind) or (not integral and not math.isfinite(v)) or v < 0:
        raise ValueError(
            f"HiDLR state dict: {key!r} must be a non-negative {'int' if integral else 'number'}, "
            f"got {v!r}; nothing was loaded"
        )


def _check_base(opt: HiDLR, base: Any) -> None:
    """The base optimizer's part: the same groups with the same parameter counts, and per-parameter
    state tensors shaped like their parameters."""
    if not isinstance(base, dict) or not {"state", "param_groups"} <= set(base):
        raise ValueError(
            "HiDLR state dict: 'base' is not an optimizer state dict (keys 'state' and "
            "'param_groups'); nothing was loaded"
        )
    groups = base["param_groups"]
    if len(groups) != len(opt.param_groups):
        raise ValueError(
            f"HiDLR state dict: the base optimizer has {len(groups)} param groups, this one "
            f"{len(opt.param_groups)}; nothing was loaded"
        )
    params = []
    for k, (saved, live) in enumerate(zip(groups, opt.param_groups)):
        if len(saved.get("params", ())) != len(live["params"]):
            raise ValueError(
                f"HiDLR state dict: param group {k} has {len(saved.get('params', ()))} parameters "
                f"in the checkpoint, {len(live['params'])} here; nothing was loaded"
            )
        params += list(zip(saved["params"], live["params"]))
    for k, g in enumerate(groups):
        lr = g.get("lr", 0.0)
        lr = float(lr) if isinstance(lr, torch.Tensor) and lr.numel() == 1 else lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr < 0:
            raise ValueError(
                f"HiDLR state dict: the base optimizer's param group {k} has lr {lr!r}; a rate must be "
                "finite and >= 0; nothing was loaded"
            )
    by_id = dict(params)
    for pid, st in base["state"].items():
        if pid not in by_id:
            raise ValueError(
                f"HiDLR state dict: the base state names parameter {pid!r}, which no group holds; nothing was loaded"
            )
        p = by_id[pid]
        for name, v in st.items():
            if isinstance(v, (str, bytes)):
                raise ValueError(
                    f"HiDLR state dict: base state {name!r} of parameter {pid} is {type(v).__name__} "
                    f"{v!r:.40}, not a tensor or number; nothing was loaded"
                )
            if isinstance(v, torch.Tensor) and v.numel() > 1 and v.shape != p.shape:
                raise ValueError(
                    f"HiDLR state dict: base state {name!r} of parameter {pid} has shape "
                    f"{tuple(v.shape)}, the parameter {tuple(p.shape)}; nothing was loaded"
                )


def validate(opt: HiDLR, state_dict: Any) -> dict[str, Any]:
    """Check a whole state dict against ``opt`` without changing anything; returns its ``hidlr``
    part. Raises ValueError naming the problem; warns about configuration that differs harmlessly."""
    if not isinstance(state_dict, dict) or set(state_dict) != {"base", "hidlr"}:
        raise ValueError(
            "not a HiDLR state dict (expected keys 'base' and 'hidlr'); to load a "
            "bare optimizer's state, use .optimizer.load_state_dict"
        )
    own = state_dict["hidlr"]
    if not isinstance(own, dict):
        raise ValueError("HiDLR state dict: 'hidlr' must be a dict; nothing was loaded")
    version = own.get("format", 1)
    readable = tuple(range(1, FORMAT_VERSION + 1))
    if isinstance(version, bool) or version not in readable:
        raise ValueError(
            f"HiDLR state dict: format {version!r} is not one this version reads {readable}; nothing was loaded"
        )
    required = _RUNNING + (("config", "refreshes", "loss_eps") if version >= 2 else ())
    required += ("last_probed",) if version >= 3 else ()
    required += tuple(k for k, since in {**_COUNTERS, **_FLAGS}.items() if version >= since)
    required += ("growth",) if version >= 6 else ()
    missing = [k for k in required if k not in own]
    if missing:
        raise ValueError(f"HiDLR state dict: missing {', '.join(map(repr, missing))}; nothing was loaded")
    k_groups = len(opt.param_groups)
    for key in ("estimates", "wrap_lrs"):
        vals = own[key]
        if not isinstance(vals, (list, tuple)) or len(vals) != k_groups:
            raise ValueError(
                f"HiDLR state dict has {len(vals) if isinstance(vals, (list, tuple)) else '?'} "
                f"groups in {key!r}, the optimizer {k_groups}; nothing was loaded"
            )
        if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 for v in vals):
            raise ValueError(
                f"HiDLR state dict: {key!r} must hold finite rates >= 0, got {list(vals)}; nothing was loaded"
            )
    for key in ("t", "period", "next_refresh") + (("refreshes",) if version >= 2 else ()):
        _number(own, key, integral=True)
    if version >= 2:
        _number(own, "loss_eps", integral=False)
        for key in _COUNTERS:
            if key in own:
                _number(own, key, integral=True)
        for key in _FLAGS:
            if key in own and not isinstance(own[key], bool):
                raise ValueError(
                    f"HiDLR state dict: {key!r} must be True or False, got {own[key]!r}; nothing was loaded"
                )
    _check_growth(own.get("growth"), k_groups)
    last = own.get("last_probed", [-1] * k_groups)
    if (
        not isinstance(last, (list, tuple))
        or len(last) != k_groups
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < -1 for v in last)
    ):
        raise ValueError(
            f"HiDLR state dict: 'last_probed' must hold {k_groups} ints >= -1, got {last!r}; nothing was loaded"
        )
    if not isinstance(own["history"], list) or not all(isinstance(r, dict) for r in own["history"]):
        raise ValueError("HiDLR state dict: 'history' must be a list of refresh records (dicts); nothing was loaded")
    for i, record in enumerate(own["history"]):
        problem = _record_problem(record)
        if problem:
            raise ValueError(f"HiDLR state dict: 'history' record {i} {problem}; nothing was loaded")
    if version >= 2:
        _check_config(opt, own["config"])
    _check_base(opt, state_dict["base"])
    return own


def _check_growth(growth: Any, k_groups: int) -> None:
    """The concave-line growth of a restarted phase: None, or its rates before and lowest probe loss."""
    if growth is None:
        return
    before = growth.get("before") if isinstance(growth, dict) else None
    lowest = growth.get("lowest") if isinstance(growth, dict) else None
    if (
        not isinstance(before, (list, tuple))
        or len(before) != k_groups
        or any(not _is_real(v) or not math.isfinite(v) or v < 0 for v in before)
        or not _is_real(lowest)
        or not math.isfinite(lowest)
    ):
        raise ValueError(
            f"HiDLR state dict: 'growth' must be None or {{'before': {k_groups} finite rates >= 0, 'lowest': "
            f"a finite probe loss}}, got {growth!r:.80}; nothing was loaded"
        )


def _is_real(v: Any, optional: bool = False) -> bool:
    return (optional and v is None) or (not isinstance(v, bool) and isinstance(v, numbers.Real))


# the fields of a refresh record (records.RefreshRecord.as_dict) and of its group decisions
_RECORD_FIELDS = {"step", "loss", "forwards", "joint_scale", "groups"}
_DECISION_REALS = ("rate", "estimate")
_DECISION_OPTIONAL = ("newton_rate", "a", "b", "r2", "target")


def _record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with one saved refresh record (its fields and their kinds), None when nothing."""
    missing = sorted(_RECORD_FIELDS - set(record))
    if missing:
        return f"lacks {missing}"
    step, forwards = record["step"], record["forwards"]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in (step, forwards)):
        return f"has step {step!r} and forwards {forwards!r}, not ints >= 0"
    if not _is_real(record["loss"]) or not _is_real(record["joint_scale"], optional=True):
        return f"has loss {record['loss']!r} and joint_scale {record['joint_scale']!r}, not numbers"
    if not isinstance(record["groups"], list):
        return "has 'groups' that is not a list"
    for k, d in enumerate(record["groups"]):
        if (
            not isinstance(d, dict)
            or not all(_is_real(d.get(f)) for f in _DECISION_REALS)
            or not all(_is_real(d.get(f), optional=True) for f in _DECISION_OPTIONAL)
            or not isinstance(d.get("accepted"), bool)
        ):
            return f"has a group decision {k} with missing or wrong fields: {d!r:.120}"
    return None


def _check_config(opt: HiDLR, saved: Any) -> None:
    here = _config(opt)
    if not isinstance(saved, dict) or "groups" not in saved:
        raise ValueError("HiDLR state dict: 'config' must be a dict with 'groups'; nothing was loaded")
    mine = [(g["name"], g["params"], g["size"]) for g in here["groups"]]
    theirs = [(g.get("name"), g.get("params"), g.get("size")) for g in saved["groups"]]
    if mine != theirs:
        raise ValueError(
            "HiDLR state dict was saved for other param groups (name, parameters, size): "
            f"{theirs}, this optimizer has {mine}; nothing was loaded"
        )
    if _adopted_budget(opt, saved) is not None:  # compared as if this optimizer had it already
        here["rules"]["total_steps"] = saved["rules"]["total_steps"]
    differ = [
        f"{key} {saved.get(key)!r} -> {here[key]!r}"
        for key in ("every", "design", "probes", "seed", "max_every", "groups_per_refresh", "rules")
        if saved.get(key) != here[key]
    ]
    if differ:
        warnings.warn(
            "HiDLR checkpoint made under other options, continuing with this optimizer's: " + "; ".join(differ),
            UserWarning,
            stacklevel=5,
        )


def _adopted_budget(opt: HiDLR, saved_config: Any) -> int | None:
    """The step budget a checkpoint carries, when this optimizer has none (``total_steps=None``) and
    the saved one is valid: a resumed run keeps its budget. None otherwise."""
    if opt.total_steps is not None or not isinstance(saved_config, dict):
        return None
    rules = saved_config.get("rules")
    value = rules.get("total_steps") if isinstance(rules, dict) else None
    try:
        return check_total_steps(value)
    except (TypeError, ValueError):
        return None


def _load_base(opt: HiDLR, base: dict[str, Any]) -> None:
    """The base optimizer's ``load_state_dict``, undone when it raises or leaves a group without an
    option the group had (a checkpoint of another optimizer class: SGD's state into Adam). Torch
    binds new ``state`` and ``param_groups`` objects on loading, so the old ones are put back as
    they were, without a copy."""
    inner = opt.optimizer
    old_state, old_groups = inner.state, inner.param_groups
    try:
        inner.load_state_dict(base)
        for k, (old, new) in enumerate(zip(old_groups, inner.param_groups)):
            lost = sorted(set(old) - set(new) - {"initial_lr"})
            if lost:
                raise ValueError(f"param group {k} lacks the options {lost}")
    except Exception as err:
        inner.state, inner.param_groups = old_state, old_groups
        raise ValueError(
            f"HiDLR state dict: the base optimizer's part does not load into {type(inner).__name__} "
            f"({type(err).__name__}: {err}); saved by another optimizer class? Nothing was loaded"
        ) from err


def load(opt: HiDLR, state_dict: Any) -> None:
    """Validate ``state_dict`` whole, then load it into ``opt`` (base optimizer first)."""
    own = validate(opt, state_dict)
    budget = _adopted_budget(opt, own.get("config"))
    _load_base(opt, state_dict["base"])
    opt.param_groups = opt.optimizer.param_groups
    opt.state = opt.optimizer.state
    opt._estimates = [float(x) for x in own["estimates"]]
    opt._wrap_lrs = [float(x) for x in own["wrap_lrs"]]
    opt._t, opt._period, opt._next_refresh = int(own["t"]), int(own["period"]), int(own["next_refresh"])
    history = copy.deepcopy(own["history"])
    opt.history = history[-opt.history_size :] if opt.history_size else []
    opt._refreshes = int(own.get("refreshes", len(history)))
    opt._loss_eps = float(own.get("loss_eps", 0.0))
    opt._probe_forwards = int(
        own.get("probe_forwards", sum(r.get("forwards", 0) for r in history if isinstance(r, dict)))
    )
    opt._last_forwards = int(own.get("last_forwards", history[-1].get("forwards", 0) if history else 0))
    opt._last_probed = [int(v) for v in own.get("last_probed", [-1] * len(opt.param_groups))]
    opt._travelling = bool(own.get("travelling", False))
    opt._arrived = bool(own.get("arrived", False))
    opt._growing = bool(own.get("restarted", False))
    growth = own.get("growth")
    opt._growth_before = None if growth is None else [float(v) for v in growth["before"]]
    opt._growth_low = math.inf if growth is None else float(growth["lowest"])
    opt._travel_refreshes = int(own.get("travel_refreshes", 0))
    opt._arrival_refreshes = int(own.get("arrival_refreshes", 0))
    opt._arrival_forwards = int(own.get("arrival_forwards", 0))
    opt._uncredited_forwards = int(own.get("travel_forwards", 0))
    if budget is not None:
        opt.total_steps = budget


def save_checkpoint(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``: write a temporary file
    in the same folder, flush and fsync it, then ``os.replace`` it onto ``path`` (atomic on POSIX and
    Windows). A process killed meanwhile leaves the previous file at ``path`` intact (and possibly a
    hidden ``.<name>.*.tmp`` file beside it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
