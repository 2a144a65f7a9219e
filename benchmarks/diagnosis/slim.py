"""Copy run records without their rate traces and curves, keeping the initial loss (small enough to commit).

.venv/bin/python benchmarks/diagnosis/slim.py benchmarks/diagnosis/results/*.jsonl --out benchmarks/diagnosis/runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for f in a.files:
        lines = []
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            rec.pop("lr_trace", None)
            curve = rec.pop("curve_loss", None)
            if curve:  # the start of the curve: whether a run ended above its initial loss
                rec["initial_loss"] = curve[0]
            lines.append(json.dumps(rec))
        (a.out / f.name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
