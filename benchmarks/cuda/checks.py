"""The CUDA paths of HiDLR, run on a GPU: training state on the device, bitwise rollback from the
host-memory snapshot, GradScaler (fp16) skips, bf16 autocast, the finiteness check over mixed
dtypes, checkpoints moved between devices, host synchronisations per step, torch.compile, and the
uncertainty estimators on the device.

    PYTHONPATH=src python benchmarks/cuda/checks.py --out benchmarks/results/cuda

The checks live in ``step_checks.py`` (the optimizer step) and ``stack_checks.py`` (probes,
curvature, compile, estimators, Lightning), their shared helpers in ``cuda_common.py``. Each check
prints one line (PASS/FAIL and its figures) and the whole set is written to ``<out>/results.json``
and ``<out>/report.md``. ``--device cpu`` runs the same checks on the CPU (GradScaler in its CPU
form; the checks that compare the device with the CPU or count CUDA synchronisations are skipped),
which is how the script is tried before a GPU is at hand. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import stack_checks
import step_checks
import torch
from cuda_common import CHECKS

#: the modules whose checks run, in this order (each in the order it defines them)
MODULES = (step_checks, stack_checks)


# ------------------------------------------------------------------------------------- runner
def environment(device: str, commit: str | None) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    if commit:
        env["commit"] = commit
        return env
    try:
        env["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        env["commit"] = "unknown"
    return env


def report(env: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "# CUDA checks",
        "",
        f"`PYTHONPATH=src python benchmarks/cuda/checks.py --device {env['device']}` at commit {env['commit']}; "
        f"{env.get('gpu', env['device'])}, torch {env['torch']}"
        + (f" (CUDA {env['cuda']})" if env.get("cuda") else "")
        + f", Python {env['python']}.",
        "",
        "| check | result | seconds | figures |",
        "| --- | --- | ---: | --- |",
    ]
    for r in results:
        figures = r.get("error") or json.dumps(r.get("figures", {}), default=str)
        lines.append(f"| {r['name']} | {'PASS' if r['ok'] else 'FAIL'} | {r['seconds']:.1f} | {figures[:400]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cuda"))
    parser.add_argument("--only", nargs="*", help="names of checks to run (default: all)")
    parser.add_argument("--commit", help="the commit to name in the report (default: git's HEAD; a copy's git can lag)")
    args = parser.parse_args()
    env = environment(args.device, args.commit)
    print(json.dumps(env))
    results = []
    cuda = args.device.startswith("cuda")
    ordered = sorted(CHECKS, key=lambda c: [m.__name__ for m in MODULES].index(c[1].__module__))
    for name, fn, cuda_only in ordered:
        if args.only and name not in args.only:
            continue
        if cuda_only and not cuda:
            print(f"SKIP {name} (needs CUDA)")
            continue
        start = time.perf_counter()
        try:
            figures, ok, error = fn(args.device), True, None
        except Exception as e:  # every failure is reported, the next check still runs
            figures, ok = {}, False
            error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        seconds = time.perf_counter() - start
        results.append({"name": name, "ok": ok, "seconds": seconds, "figures": figures, "error": error})
        print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s) {error or json.dumps(figures, default=str)[:300]}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"environment": env, "checks": results}, indent=1, default=str))
    (args.out / "report.md").write_text(report(env, results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
