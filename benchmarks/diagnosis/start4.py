"""Round 4 start-rate table: per workload and variant, the median final loss over seeds from each
start rate (the default rate's runs count at their own value), the worst start rate's excess over
the best, and runs that did not end ``ok``.

    .venv/bin/python benchmarks/diagnosis/start4.py benchmarks/diagnosis/results/round4*.jsonl \
        --variants hidlr hidlr-wsd hidlr-cos
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import load, median_loss

from hidlr.bench.lr.workloads import get as get_workloads

START_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a = ap.parse_args()
    recs = [r for f in a.files for r in load(f) if r["seed"] in a.seeds]
    print("| workload | variant | " + " | ".join(f"lr0={x:g}" for x in START_RATES) + " | gap | within 2% | not ok |")
    print("| --- | --- |" + " --- |" * (len(START_RATES) + 3))
    within = dict.fromkeys(a.variants, 0)
    counted = 0
    for wl in get_workloads():
        rows = []
        for v in a.variants:
            cells, meds, bad = [], [], 0
            for lr0 in START_RATES:
                key = "default" if lr0 == wl.default_lr else lr0
                runs = [r for r in recs if r["workload"] == wl.name and r["method"] == v and r.get("lr0") == key]
                if len(runs) != len(a.seeds):
                    break
                m = median_loss(runs)
                bad += sum(r["status"] != "ok" for r in runs)
                meds.append(m)
                cells.append(f"{m:.4g}")
            else:
                gap = (max(meds) - min(meds)) / abs(min(meds))
                within[v] += gap <= 0.02
                rows.append(
                    f"| {wl.name} | {v} | "
                    + " | ".join(cells)
                    + f" | {gap:.1%} | {'yes' if gap <= 0.02 else 'no'} | {bad} |"
                )
        if len(rows) == len(a.variants):
            counted += 1
            print("\n".join(rows))
    print(
        f"\nWithin 2% over the start rates, of {counted} workloads: " + ", ".join(f"{v} {n}" for v, n in within.items())
    )


if __name__ == "__main__":
    main()
