"""Would ``mode="full"`` make the better default for a few groups? (round 22 of ``docs/diagnosis.md``)

Hi-DLR full (cross terms between groups, the box-constrained quadratic) has the best median rank of
the store's single-run methods, one place ahead of the default (diag). This pairs the two by seed on
every workload where full ran (K <= 6 groups): per workload the median over seeds of the relative
gap of full to diag (and on how many seeds full ends lower / higher by more than 1%), of each to
the one-group rule (``gen``) of the same seed, and of each to the grid's run chosen without that
seed (:func:`hidlr.bench.lr.goals.goals_paired`); then the totals and the geometric mean of the
ratios full / diag. With ``--start-rates FILE...`` (``hidlr bench lr`` records of
``hidlr-full@lr0=...``), the paired start-rate spread of both rules on the seeds both ran. Nothing
in the store is re-run.

    .venv/bin/python benchmarks/diagnosis/full_vs_diag.py [--start-rates results/round22-*/records.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from seed_sets import STORE

from hidlr.bench.lr.goals import goals_paired, relative_gap, start_rates_paired

FULL, DIAG, ONE = "hidlr-full", "hidlr-diag", "gen"


def _losses(records: list[dict]) -> dict[tuple[str, str], dict[int, float]]:
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in records:
        ok = r["status"] == "ok" and r["final_loss"] is not None and math.isfinite(r["final_loss"])
        out.setdefault((r["workload"], r["method"]), {})[r["seed"]] = r["final_loss"] if ok else math.inf
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def default_rate(records: list[dict]) -> None:
    loss = _losses(records)
    held = {m: {r["workload"]: r for r in goals_paired(records, m)["rows"]} for m in (FULL, DIAG)}
    print(
        "| workload | K | full against diag (lower / higher by > 1%) | full against gen (seeds lower) |"
        " diag against gen (seeds lower) | full to the held-out grid | diag to the held-out grid |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    lower = higher = 0
    logs: list[float] = []
    for w in sorted(held[FULL]):  # the workloads where full ran (K <= 6)
        f, d = loss[(w, FULL)], loss[(w, DIAG)]
        seeds = sorted(set(f) & set(d))
        gaps = [relative_gap(f[s], d[s]) for s in seeds]
        lo, hi = sum(g < -0.01 for g in gaps), sum(g > 0.01 for g in gaps)
        lower, higher = lower + lo, higher + hi
        logs += [math.log(f[s] / d[s]) for s in seeds if f[s] > 0 and d[s] > 0 and math.isfinite(f[s] / d[s])]
        k = next(len(r["groups"]) for r in records if r["workload"] == w and r["method"] == DIAG)
        hf, hd = held[FULL][w], held[DIAG][w]
        cells = [
            f"{_pct(statistics.median(gaps))} ({lo} / {hi} of {len(seeds)})",
            f"{_pct(hf['gap_to_one_group'])} ({hf['lower_than_one_group']})",
            f"{_pct(hd['gap_to_one_group'])} ({hd['lower_than_one_group']})",
            f"{_pct(hf['gap_to_grid'])} ({hf['lower_than_grid']})",
            f"{_pct(hd['gap_to_grid'])} ({hd['lower_than_grid']})",
        ]
        print(f"| {w} | {k} | " + " | ".join(cells) + " |")
    print(
        f"\nfull against diag, runs lower / higher by > 1%: {lower} / {higher}; geometric mean of the "
        f"ratios {math.exp(sum(logs) / len(logs)):.3f} ({len(logs)} pairs with positive losses)"
    )


def start_rates(records: list[dict], files: list[Path]) -> None:
    extra = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    seeds = {r["seed"] for r in extra}
    runs = [r for r in records if r["seed"] in seeds] + extra
    paired = start_rates_paired(runs)
    print(f"\nStart-rate spread paired by seed (seeds {sorted(seeds)}; the default rate counts as 0):\n")
    print("| workload | full | diag |")
    print("| --- | --- | --- |")
    within = {FULL: 0, DIAG: 0}
    for w in sorted(paired):
        if FULL not in paired[w] or DIAG not in paired[w]:
            continue
        cells = []
        for m in (FULL, DIAG):
            p = paired[w][m]
            within[m] += p["within"]
            worst = max(p["by_lr0"].items(), key=lambda kv: abs(kv[1]["gap"]))
            cells.append(f"{100 * p['spread']:.1f}% (worst: from {worst[0]:g}, {_pct(worst[1]['gap'])})")
        print(f"| {w} | " + " | ".join(cells) + " |")
    print(f"\nwithin 2%: full {within[FULL]}, diag {within[DIAG]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start-rates", nargs="*", type=Path, default=[])
    args = ap.parse_args()
    records = json.loads(STORE.read_text())["records"]
    default_rate(records)
    if args.start_rates:
        start_rates(records, args.start_rates)


if __name__ == "__main__":
    main()
