"""Two ``hidlr bench lr`` stores (or results folders) compared run by run: how many of the runs
both hold have the same final loss and rate trace bit for bit, and the ones that differ.

    .venv/bin/python benchmarks/diagnosis/same_runs.py /tmp/on /tmp/off
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def records(folder: Path) -> dict[tuple[str, str, int], dict]:
    """(workload, method, seed) -> record, from every results.json under ``folder``."""
    found: dict[tuple[str, str, int], dict] = {}
    for f in sorted(folder.rglob("results.json")):
        for r in json.loads(f.read_text())["records"]:
            found[(r["workload"], r["method"], r["seed"])] = r
    return found


def main() -> None:
    first, second = (records(Path(a)) for a in sys.argv[1:3])
    both = sorted(set(first) & set(second))
    differ = [
        k
        for k in both
        if first[k]["final_loss"] != second[k]["final_loss"] or first[k]["lr_trace"] != second[k]["lr_trace"]
    ]
    for k in differ:
        print("differs:", *k, first[k]["final_loss"], second[k]["final_loss"])
    print(f"{len(both) - len(differ)} of {len(both)} runs equal bit for bit")


if __name__ == "__main__":
    main()
