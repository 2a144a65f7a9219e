"""The fault and bad-input sweep: HiDLR's constructor arguments, faults inside ``step``, damaged
checkpoints and killed saves, and the ``hidlr.uq`` estimators' parameters and data. Each case is
classified automatically (see ``harness.py``); the report counts the classes per area and lists
every case that is not ``refused-clear`` or ``ok``.

    .venv/bin/python benchmarks/faults/sweep.py --out benchmarks/results/faults/
    .venv/bin/python benchmarks/faults/sweep.py --quick   # the subset the test suite runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from harness import BAD, CLASSES, Case, Result, run_case  # noqa: E402

AREAS = ("options", "step", "checkpoint", "uq")


def collect(areas: tuple[str, ...] = AREAS, quick: bool = False) -> list[Case]:
    """The cases of ``areas`` (the quick subset with ``quick``), in a fixed order."""
    import cases_checkpoint
    import cases_options
    import cases_step
    import cases_uq
    import cases_uq_args
    import cases_wrapping

    modules = {
        "options": [cases_options],
        "step": [cases_step, cases_wrapping],
        "checkpoint": [cases_checkpoint],
        "uq": [cases_uq, cases_uq_args],
    }
    out = [c for a in areas for m in modules[a] for c in m.cases()]
    return [c for c in out if c.quick] if quick else out


def run(cases: list[Case], progress: bool = False) -> list[Result]:
    torch.set_num_threads(1)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if progress:
            from rich.progress import track

            iterator = track(cases, description="fault sweep")
        else:
            iterator = cases
        for case in iterator:
            results.append(run_case(case))
    return results


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=HERE)
        return head.stdout.strip() + (" (with uncommitted changes in src/)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def report(results: list[Result], command: str, commit: str, seconds: float) -> str:
    areas = sorted({r.area for r in results}, key=lambda a: [r.area for r in results].index(a))
    counts = {a: Counter(r.cls for r in results if r.area == a) for a in areas}
    total = Counter(r.cls for r in results)
    lines = [
        "# Fault and bad-input sweep",
        "",
        f"Command: `{command}`  ",
        f"Commit: {commit}; torch {torch.__version__}; {seconds:.0f} s wall on one thread.",
        "",
        "Classes: `refused-clear` (TypeError/ValueError or the documented error, naming the argument or "
        "problem, nothing changed), `ok` (accepted and correct, or the documented behaviour), "
        "`refused-unclear` (refused without naming it), `refused-valid` (a valid control value refused), "
        "`silently-wrong` (a wrong value accepted, or wrong results), `loses-data` (state, weights or a "
        "fitted model changed or unusable after the error). Definitions and checks: "
        "`benchmarks/faults/harness.py` and the `cases_*.py` beside it.",
        "",
        "| area | cases | " + " | ".join(CLASSES) + " |",
        "|---|---|" + "---|" * len(CLASSES),
    ]
    for a in areas:
        n = sum(counts[a].values())
        lines.append(f"| {a} | {n} | " + " | ".join(str(counts[a][c]) for c in CLASSES) + " |")
    lines.append(f"| **all** | {len(results)} | " + " | ".join(f"**{total[c]}**" for c in CLASSES) + " |")
    bad = [r for r in results if r.cls in BAD]
    lines += ["", f"## Cases not refused-clear or ok: {len(bad)}", ""]
    if bad:
        lines += ["| area | case | class | message |", "|---|---|---|---|"]
        for r in bad:
            msg = r.message.replace("|", "\\|")
            lines.append(f"| {r.area} | `{r.name}` | {r.cls} | {msg} |")
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and report.md")
    parser.add_argument("--quick", action="store_true", help="only the subset the test suite runs")
    parser.add_argument("--areas", nargs="+", choices=AREAS, default=list(AREAS))
    args = parser.parse_args(argv)
    command = "python benchmarks/faults/sweep.py " + " ".join(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    results = run(collect(tuple(args.areas), args.quick), progress=True)
    seconds = time.perf_counter() - start
    commit = _commit()
    text = report(results, command.strip(), commit, seconds)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": command.strip(),
            "commit": commit,
            "seconds": seconds,
            "counts": dict(Counter(r.cls for r in results)),
            "cases": [{"area": r.area, "case": r.name, "class": r.cls, "message": r.message} for r in results],
        }
        (args.out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
        (args.out / "report.md").write_text(text)
    bad = [r for r in results if r.cls in BAD]
    print(text.split("## Cases")[0])
    for r in bad:
        print(f"{r.cls:16} {r.area:11} {r.name}: {r.message[:220]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
