"""Two runs of ``hidlr bench uci`` compared split by split: per (set, model, optimizer) the mean
test LL of each, the mean paired difference (second minus first) with its standard error, and on
how many splits the records are equal.

    .venv/bin/python benchmarks/diagnosis/uci_paired.py benchmarks/results/uci/protocol-28d1e39/results.json \\
        benchmarks/results/uci/results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from hidlr.bench.reporting import mean_se


def test_metrics(path: Path) -> dict[tuple[str, str, str, int], dict]:
    """(set, model, optimizer, split) -> test metrics of every record that has them."""
    records = json.loads(path.read_text())["records"]
    return {(r["set"], r["model"], r["optimizer"], r["split"]): r["metrics"] for r in records if r.get("metrics")}


def main() -> None:
    first, second = (test_metrics(Path(a)) for a in sys.argv[1:3])
    for cell in sorted({k[:3] for k in first} & {k[:3] for k in second}):
        pairs = [(first[k], second[k]) for k in sorted(first) if k[:3] == cell and k in second]
        diff = mean_se(b["ll"] - a["ll"] for a, b in pairs)
        equal = sum(a == b for a, b in pairs)
        print(
            f"{cell[0]:17s} {cell[1]:18s} {cell[2]:5s} splits {len(pairs):2d} equal {equal:2d}  LL "
            f"{statistics.mean(a['ll'] for a, _ in pairs):7.3f} -> {statistics.mean(b['ll'] for _, b in pairs):7.3f}"
            f"  diff {diff['mean']:+.3f} ± {diff['se']:.3f}"
        )


if __name__ == "__main__":
    main()
