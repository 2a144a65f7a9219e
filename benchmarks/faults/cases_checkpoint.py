"""Checkpoint faults: every key of HiDLR's state dict deleted or given wrong values, the base
optimizer's part damaged, other param groups, other options, and ``hidlr.save_checkpoint`` killed
mid-write. A damaged dict must be refused naming the key with nothing changed (or loaded harmlessly:
the loaded state equals the saved one); other options load with a warning; a killed save leaves the
previous file loadable."""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from cases_step import Rig
from harness import Case, Outcome, refused, short, tensors_equal

from hidlr import save_checkpoint

# wrong values per kind of saved value (each is wrong for every key of that kind)
_WRONG: dict[str, list[tuple[str, Any]]] = {
    "int": [("none", None), ("str", "3"), ("negative", -1), ("float", 2.5), ("nan", math.nan), ("bool", True)],
    "float": [("none", None), ("str", "x"), ("negative", -1.0), ("nan", math.nan), ("inf", math.inf)],
    "bool": [("none", None), ("str", "no"), ("int", 2), ("list", [True])],
    "list": [("none", None), ("str", "x"), ("short", "SHORT"), ("nan-entry", "NAN"), ("negative-entry", "NEG")],
    "history": [
        ("none", None),
        ("str", "x"),
        ("dict", {}),
        ("garbage-entries", ["x", 3]),
        ("empty-records", [{}, {}]),
        ("records-with-wrong-fields", "WRONG-FIELDS"),
    ],
    "config": [("none", None), ("str", "x"), ("no-groups", {})],
    "growth": [
        ("str", "x"),
        ("list", [1.0]),
        ("short-before", "GROWTH-SHORT"),
        ("negative-before", "GROWTH-NEG"),
        ("nan-lowest", "GROWTH-NAN"),
    ],
    "format": [("future", 99), ("str", "2"), ("none", None)],
}


def _kind(key: str, value: Any) -> str:
    if key in ("history", "config", "format", "growth"):
        return key
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "list"


def _wrong_list(value: list[Any], how: str) -> list[Any]:
    if how == "SHORT":
        return value[:-1]
    bad = math.nan if how == "NAN" else -5
    return [bad, *value[1:]]


def _source() -> dict[str, Any]:
    rig = Rig(warm_steps=7, every="auto")
    return copy.deepcopy(rig.opt.state_dict())


def _load_case(mutate: Callable[[dict[str, Any]], None], words: list[str], harmless_ok: bool = True) -> Outcome:
    """Load a mutated copy of a saved state into another optimizer (warmed differently)."""
    source = _source()
    sd = copy.deepcopy(source)
    mutate(sd)
    target = Rig(warm_steps=3, every="auto")
    snap = target.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            target.opt.load_state_dict(sd)
        except Exception as err:
            out = refused(err, words)
            lost = target.diff(snap) or target.usable()
            return Outcome("loses-data", f"{out.message} | {lost}") if lost else out
    if harmless_ok and tensors_equal(target.opt.state_dict(), source):
        lost = target.usable()
        return Outcome("loses-data", lost) if lost else Outcome("ok", "loaded; the loaded state equals the saved one")
    lost = target.usable()
    return Outcome("silently-wrong", "accepted" + (f"; then {lost}" if lost else ""))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(sd: dict[str, Any]) -> None:
        own = sd["hidlr"]
        if value == "DELETE":
            del own[key]
        elif value == "WRONG-FIELDS":
            own[key] = [dict.fromkeys(r, "x") for r in own[key]]
        elif isinstance(value, str) and value in ("SHORT", "NAN", "NEG"):
            own[key] = _wrong_list(own[key], value)
        elif isinstance(value, str) and value.startswith("GROWTH-"):  # a growth record, damaged
            before = {"GROWTH-SHORT": own["estimates"][:-1], "GROWTH-NEG": [-1.0, *own["estimates"][1:]]}.get(
                value, list(own["estimates"])
            )
            own[key] = {"before": before, "lowest": math.nan if value == "GROWTH-NAN" else 1.0}
        else:
            own[key] = value

    return mutate


def _base(how: str) -> Callable[[dict[str, Any]], None]:
    def mutate(sd: dict[str, Any]) -> None:
        base = sd["base"]
        pid = next(iter(base["state"]))
        if how == "no state":
            del base["state"]
        elif how == "extra group":
            base["param_groups"].append(copy.deepcopy(base["param_groups"][0]))
        elif how == "group lost a parameter":
            base["param_groups"][0]["params"] = base["param_groups"][0]["params"][:-1]
        elif how == "state of wrong shape":
            base["state"][pid]["exp_avg"] = torch.zeros(7, 7, dtype=torch.float64)
        elif how == "state not a tensor":
            base["state"][pid]["exp_avg"] = "x"
        elif how == "negative lr":
            base["param_groups"][0]["lr"] = -1.0
        elif how == "nan lr":
            base["param_groups"][0]["lr"] = math.nan
        elif how == "not a dict":
            sd["base"] = [1, 2]

    return mutate


# damage to the base optimizer's part, and the words its refusal must contain
BASE_FAULTS: dict[str, list[str]] = {
    "no state": ["base"],
    "extra group": ["param groups"],
    "group lost a parameter": ["param group", "parameters"],
    "state of wrong shape": ["exp_avg", "shape"],
    "state not a tensor": ["exp_avg"],
    "negative lr": ["lr"],
    "nan lr": ["lr"],
    "not a dict": ["base"],
}


def _config(how: str) -> Callable[[dict[str, Any]], None]:
    def mutate(sd: dict[str, Any]) -> None:
        cfg = sd["hidlr"]["config"]
        if how == "renamed group":
            cfg["groups"][0]["name"] = "other"
        elif how == "other group size":
            cfg["groups"][1]["size"] += 1

    return mutate


def _other_base_optimizer() -> Outcome:
    """SGD's checkpoint loaded into HiDLR around Adam: refused naming the optimizer's options, or
    loaded into a state that still steps."""
    source = Rig(warm_steps=4, base="sgd").opt.state_dict()
    target = Rig(warm_steps=3)
    snap = target.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            target.opt.load_state_dict(copy.deepcopy(source))
        except Exception as err:
            out = refused(err, ["base"])
            lost = target.diff(snap) or target.usable()
            return Outcome("loses-data", f"{out.message} | {lost}") if lost else out
    lost = target.usable()
    return Outcome("silently-wrong", "accepted" + (f"; then {lost}" if lost else ""))


def _other_options() -> Outcome:
    """A checkpoint made under other options loads with a warning naming them."""
    source = Rig(warm_steps=5, every=3, mode="full").opt.state_dict()
    target = Rig(warm_steps=1, every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target.opt.load_state_dict(copy.deepcopy(source))
    text = " ".join(str(w.message) for w in caught)
    if "every" not in text or "mode" not in text:
        return Outcome("silently-wrong", f"loaded without naming the options that differ: {text[:200]!r}")
    lost = target.usable()
    return Outcome("loses-data", lost) if lost else Outcome("ok", "loaded, warning: " + text[:200])


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from hidlr import save_checkpoint
    path = sys.argv[1]
    i = 0
    while True:
        i += 1
        save_checkpoint({"i": i, "w": torch.full((4_000_000,), float(i))}, path)
        print(i, flush=True)
    """
)


def _killed_save(trials: int = 3) -> Outcome:
    """A process killed with SIGKILL while ``save_checkpoint`` writes: the file at the path loads and
    holds one complete version."""
    problems = []
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ckpt.pt"
            save_checkpoint({"i": 0, "w": torch.zeros(4_000_000)}, path)
            proc = subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
            )
            assert proc.stdout is not None
            proc.stdout.readline()  # one save done: the next is under way when the kill comes
            time.sleep(0.02 * (trial + 1))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            try:
                obj = torch.load(path, weights_only=True)
                if not bool((obj["w"] == float(obj["i"])).all()):
                    problems.append(f"trial {trial}: a mixed version")
            except Exception as err:
                problems.append(f"trial {trial}: {short(err)}")
    if problems:
        return Outcome("loses-data", "; ".join(problems))
    return Outcome("ok", f"{trials} kills mid-save: the previous or the new checkpoint loaded each time")


def _save_raises() -> Outcome:
    """A save that fails while pickling: the previous file is intact and no temporary file is left."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        save_checkpoint({"i": 1}, path)
        try:
            save_checkpoint({"i": 2, "bad": lambda: None}, path)
        except Exception as err:
            left = sorted(p.name for p in Path(tmp).iterdir())
            intact = torch.load(path, weights_only=True) == {"i": 1}
            if not intact or left != ["ckpt.pt"]:
                return Outcome("loses-data", f"{short(err)} | files {left}, previous intact: {intact}")
            return Outcome("refused-clear", short(err))
    return Outcome("silently-wrong", "a lambda was saved")


def cases() -> list[Case]:
    out: list[Case] = []
    own = _source()["hidlr"]
    for key, value in own.items():
        out.append(
            Case("checkpoint", f"hidlr[{key!r}] missing", lambda k=key: _load_case(_set(k, "DELETE"), [k]), quick=True)
        )
        for label, wrong in _WRONG[_kind(key, value)]:
            out.append(
                Case(
                    "checkpoint",
                    f"hidlr[{key!r}] = {label}",
                    lambda k=key, w=wrong: _load_case(_set(k, w), [k], harmless_ok=False),
                )
            )
    for how, words in BASE_FAULTS.items():
        out.append(
            Case("checkpoint", f"base: {how}", lambda h=how, w=words: _load_case(_base(h), w, False), quick=True)
        )
    for how in ("renamed group", "other group size"):
        out.append(Case("checkpoint", f"config: {how}", lambda h=how: _load_case(_config(h), ["groups"], False)))
    out.append(Case("checkpoint", "not a HiDLR state dict", lambda: _load_case(lambda sd: sd.pop("hidlr"), ["HiDLR"])))
    out.append(Case("checkpoint", "other options", _other_options, quick=True))
    out.append(Case("checkpoint", "another base optimizer (SGD into Adam)", _other_base_optimizer, quick=True))
    out.append(Case("checkpoint", "save killed mid-write (SIGKILL)", _killed_save))
    out.append(Case("checkpoint", "save raising mid-write", _save_raises, quick=True))
    return out
