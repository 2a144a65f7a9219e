"""Round 4 table: rule variants at one start rate against the stored tuned grid and the stored
single-run baselines of ``benchmarks/results/lr/results.json``.

    .venv/bin/python benchmarks/diagnosis/compare4.py benchmarks/diagnosis/results/round4-*.jsonl \
        --variants hidlr hidlr-cos --versus gen gen-cos

Columns: median final validation loss over seeds (gap to the tuned grid). Rows at the bottom: how
many workloads are within 1% of the tuned grid, better than each ``--versus`` variant (median
against median; ``paired``: on how many workloads the variant is lower on most seeds), and the
median over workloads of the variant's rank among itself and the stored single-run baselines
(``BASELINES``; the one-group rule counted as the ``--versus`` variant of the same decay).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ablate import tuned_losses
from common import load, median_loss

BASELINES = ["default", "default-wcos", "prodigy", "dadapt-adam", "sf-adamw", "ldog", "gen-optim"]


def stored_medians(path: Path = Path("benchmarks/results/lr/results.json")) -> dict[str, dict[str, float]]:
    summary = json.loads(path.read_text())["summary"]["workloads"]
    return {w: {m: s["table"][m]["loss"]["median"] for m in BASELINES if m in s["table"]} for w, s in summary.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--versus", nargs="*", default=[])
    ap.add_argument("--lr0", default="default")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a = ap.parse_args()
    lr0 = a.lr0 if a.lr0 == "default" else float(a.lr0)
    recs = [r for f in a.files for r in load(f) if r["seed"] in a.seeds and r.get("lr0") == lr0]
    tuned, stored = tuned_losses(), stored_medians()
    names = a.variants + [v for v in a.versus if v not in a.variants]
    workloads = [
        w
        for w in tuned
        if all(sum(r["workload"] == w and r["method"] == v for r in recs) == len(a.seeds) for v in names)
    ]
    runs = {
        (w, v): sorted((r for r in recs if r["workload"] == w and r["method"] == v), key=lambda r: r["seed"])
        for w in workloads
        for v in names
    }
    med = {k: median_loss(v) for k, v in runs.items()}
    print(f"Median final validation loss over seeds {a.seeds}, lr0 = {a.lr0} (gap to the tuned grid).\n")
    print("| workload | tuned grid | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for w in workloads:
        cells = [f"{med[(w, v)]:.4g} ({(med[(w, v)] - tuned[w]) / abs(tuned[w]):+.1%})" for v in names]
        print(f"| {w} | {tuned[w]:.4g} | " + " | ".join(cells) + " |")
    n = len(workloads)
    row = lambda label, vals: print(f"| {label} | | " + " | ".join(str(x) for x in vals) + " |")
    row(
        f"within 1% of tuned (of {n})",
        [sum(med[(w, v)] <= tuned[w] + 0.01 * abs(tuned[w]) for w in workloads) for v in names],
    )
    for ref in a.versus:
        row(f"better than {ref}", [sum(med[(w, v)] < med[(w, ref)] for w in workloads) for v in names])

        def paired(w: str, v: str, ref: str = ref) -> bool:
            lower = sum(
                x["final_loss"] < y["final_loss"]
                for x, y in zip(runs[(w, v)], runs[(w, ref)])
                if x["status"] == y["status"] == "ok"
            )
            return lower > len(a.seeds) / 2

        row(f"lower than {ref} on most seeds", [sum(paired(w, v) for w in workloads) for v in names])
    row(
        "median gap to tuned",
        [f"{statistics.median((med[(w, v)] - tuned[w]) / abs(tuned[w]) for w in workloads):+.1%}" for v in names],
    )
    ranks = []
    for v in names:
        one_group = "gen" + v.partition("-")[1] + v.partition("-")[2] if v.startswith("hidlr") else None
        rs = []
        for w in workloads:
            field = [x for m, x in stored[w].items() if x is not None]
            if one_group in names:
                field.append(med[(w, one_group)])
            rs.append(1 + sum(x < med[(w, v)] for x in field) + 0.5 * sum(x == med[(w, v)] for x in field))
        ranks.append(statistics.median(rs))
    row("median rank vs stored baselines (+ one-group of same decay)", ranks)


if __name__ == "__main__":
    main()
