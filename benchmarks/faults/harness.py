"""The classes a fault case ends in, and the helpers that decide them.

A case is a function returning :class:`Outcome`. The classes:

- ``refused-clear``: raised TypeError / ValueError (or the documented error type) whose message names
  the argument or problem, and nothing changed;
- ``ok``: accepted and correct (or the documented behaviour happened);
- ``refused-unclear``: refused, but the message does not name the problem or the type is unexpected;
- ``refused-valid``: a valid control value was refused (the sweep's own check on the checker);
- ``silently-wrong``: accepted, but a wrong value was taken or the results are wrong / non-finite;
- ``loses-data``: after the error, state, weights or a fitted model changed or became unusable.
"""

from __future__ import annotations

import copy
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

CLASSES = ("refused-clear", "ok", "refused-unclear", "refused-valid", "silently-wrong", "loses-data")
BAD = ("refused-unclear", "refused-valid", "silently-wrong", "loses-data")


@dataclass
class Outcome:
    cls: str
    message: str = ""


@dataclass
class Case:
    area: str
    name: str
    run: Callable[[], Outcome]
    quick: bool = False  # part of the fast subset run by the test suite


@dataclass
class Result:
    area: str
    name: str
    cls: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def names(message: str, words: Sequence[str]) -> bool:
    """Whether ``message`` names every one of ``words`` as a whole word (``every`` is not in ``max_every``)."""
    return all(re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", message) for w in words)


def short(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text[:300]


def refused(
    err: BaseException, words: Sequence[str], types: tuple[type[BaseException], ...] = (TypeError, ValueError)
) -> Outcome:
    """``refused-clear`` when ``err`` is one of ``types`` and names ``words``, else ``refused-unclear``."""
    msg = short(err)
    if isinstance(err, types) and names(str(err), words):
        return Outcome("refused-clear", msg)
    return Outcome("refused-unclear", msg)


def expect_refusal(
    action: Callable[[], Any],
    words: Sequence[str],
    types: tuple[type[BaseException], ...] = (TypeError, ValueError),
    unchanged: Callable[[], str | None] | None = None,
) -> Outcome:
    """Run ``action``, which should be refused naming ``words``; ``unchanged`` returns None when the
    state is as before (else what changed: the case then loses data)."""
    try:
        action()
    except Exception as err:
        out = refused(err, words, types)
        if unchanged is not None:
            diff = _safe(unchanged)
            if diff is not None:
                return Outcome("loses-data", f"{out.message} | after it: {diff}")
        return out
    return Outcome("silently-wrong", "accepted")


def _safe(check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except Exception as err:
        return f"state check raised {short(err)}"


def tensors_equal(a: Any, b: Any) -> bool:
    """Deep bitwise equality of nested dicts / lists / tensors / numbers (NaN equals NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def run_case(case: Case) -> Result:
    """Run one case; a crash of the case itself is reported as ``refused-unclear`` with its trace."""
    try:
        out = case.run()
    except Exception as err:
        tb = traceback.format_exc(limit=3).replace("\n", " | ")
        out = Outcome("refused-unclear", f"case crashed: {short(err)} [{tb[-300:]}]")
    return Result(case.area, case.name, out.cls, out.message)


def deep(x: Any) -> Any:
    return copy.deepcopy(x)
