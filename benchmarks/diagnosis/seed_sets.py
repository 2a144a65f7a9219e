"""The issue's goal counts per seed set, for the store's methods and for rule variants in run files
(round 9 of ``docs/diagnosis.md``): per set of seeds, the tuned grid (the best of the grid's seven
points by median over those seeds), and for every method and variant the workloads whose median
final loss is within 1% of it (or better) and those where it is lower than GeN's; then each variant
against the engine's default (``hidlr-diag``) run by run, and, with ``--start-rates``, the spread of
the final loss over the five start rates (the default's from the store's start-rate runs, a
variant's from run files with its default-rate and ``--no-default --lr0 ...`` runs).

    .venv/bin/python benchmarks/diagnosis/seed_sets.py benchmarks/diagnosis/results/round9-*.jsonl \
        --sets 0-2 3-5 6-8 0-8
    .venv/bin/python benchmarks/diagnosis/seed_sets.py benchmarks/diagnosis/results/round9-pool25*.jsonl \
        --start-rates 0-5
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

START_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
STORE = Path(__file__).resolve().parents[1] / "results" / "lr" / "results.json"
DEFAULT = "hidlr-diag"
# round4.py's name of the engine at its defaults (the anneal is off there unless named)
ROUND4_DEFAULT = "hidlr+anneal=0.2"


def runs(files: list[Path]) -> dict[tuple[str, str], dict[int, float]]:
    """(workload, method) -> seed -> final loss (inf for a failed run), at the default start rate."""
    cell: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    records = [(r, r.get("lr0") is None) for r in json.loads(STORE.read_text())["records"]]
    for f in files:
        records += [(json.loads(line), False) for line in f.read_text().splitlines()]
    for r, from_store in records:
        if not from_store and r.get("lr0") != "default":
            continue
        if from_store or r.get("lr0") == "default":
            method = DEFAULT if r["method"] == ROUND4_DEFAULT else r["method"]
            ok = r["status"] == "ok" and r["final_loss"] is not None and math.isfinite(r["final_loss"])
            cell[(r["workload"], method)][r["seed"]] = r["final_loss"] if ok else math.inf
    return cell


def start_rate_runs(files: list[Path]) -> dict[str, dict[tuple[str, float], dict[int, float]]]:
    """method -> (workload, lr0) -> seed -> final loss, for the default (the store's ``hidlr-diag`` and
    ``hidlr-diag@lr0=X``) and every variant in ``files`` (its default-rate runs count at the
    workload's default rate)."""
    from hidlr.bench.lr.workloads import get as get_workloads

    default_lr = {w.name: w.default_lr for w in get_workloads()}
    out: dict[str, dict[tuple[str, float], dict[int, float]]] = defaultdict(lambda: defaultdict(dict))

    def loss(r: dict) -> float:
        """The final loss; inf for a failed run (not ok, not finite, or above its initial loss)."""
        ok = r["status"] == "ok" and r["final_loss"] is not None and math.isfinite(r["final_loss"])
        curve = (r.get("curve") or {}).get("loss") or r.get("curve_loss")
        initial = curve[0] if curve else r.get("initial_loss")
        return r["final_loss"] if ok and (initial is None or r["final_loss"] <= initial) else math.inf

    for r in json.loads(STORE.read_text())["records"]:
        m, w = r["method"], r["workload"]
        if m == DEFAULT and r.get("lr0") is None:
            out[DEFAULT][(w, default_lr[w])][r["seed"]] = loss(r)
        elif m.startswith(DEFAULT + "@lr0="):
            out[DEFAULT][(w, float(m.split("=")[1]))][r["seed"]] = loss(r)
    for f in files:
        for r in map(json.loads, f.read_text().splitlines()):
            lr0 = default_lr[r["workload"]] if r["lr0"] == "default" else float(r["lr0"])
            out[r["method"]][(r["workload"], lr0)][r["seed"]] = loss(r)
    return out


def print_start_rates(files: list[Path], seeds: list[int]) -> None:
    """Per workload, (worst - best) / |best| of the median final loss over the five start rates."""
    runs_by = start_rate_runs(files)
    workloads = sorted({w for (w, _) in runs_by[DEFAULT]})
    names = [DEFAULT] + [m for m in runs_by if m != DEFAULT]
    gaps: dict[str, dict[str, float]] = {m: {} for m in names}
    for m in names:
        for w in workloads:
            cells = [runs_by[m].get((w, lr), {}) for lr in START_RATES]
            if all(all(s in c for s in seeds) for c in cells):
                meds = [statistics.median(c[s] for s in seeds) for c in cells]
                gaps[m][w] = (max(meds) - min(meds)) / abs(min(meds))
    print(f"\nWorst start rate against the best, medians over seeds {seeds[0]}-{seeds[-1]}:\n")
    print("| workload | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for w in workloads:
        print(f"| {w} | " + " | ".join(f"{gaps[m][w]:.1%}" if w in gaps[m] else "—" for m in names) + " |")
    print(
        "| within 2% | "
        + " | ".join(f"{sum(g <= 0.02 for g in gaps[m].values())} of {len(gaps[m])}" for m in names)
        + " |"
    )
    print("\nEach variant against the default at each start rate, run by run (ratios over positive losses;")
    print("failed: not ok, not finite or ended above its initial loss; the default's failures in brackets):\n")
    print("| variant | lr0 | runs | identical | lower by > 1% | higher by > 1% | geometric mean | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in names[1:]:
        for lr in START_RATES:
            pairs = [
                (runs_by[m][(w, lr)][s], runs_by[DEFAULT][(w, lr)][s])
                for w in workloads
                for s in seeds
                if s in runs_by[m].get((w, lr), {}) and s in runs_by[DEFAULT].get((w, lr), {})
            ]
            pos = [(x, y) for x, y in pairs if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y)]
            if not pairs:
                continue
            gm = math.exp(sum(math.log(x / y) for x, y in pos) / len(pos)) if pos else math.nan
            print(
                f"| {m} | {lr:g} | {len(pairs)} | {sum(x == y for x, y in pairs)} | "
                f"{sum(x < 0.99 * y for x, y in pos)} | {sum(x > 1.01 * y for x, y in pos)} | {gm:.3f} | "
                f"{sum(not math.isfinite(x) for x, _ in pairs)} ({sum(not math.isfinite(y) for _, y in pairs)}) |"
            )


def seed_set(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path, help="round4.py run files (variants)")
    ap.add_argument("--sets", nargs="+", default=["0-2", "3-5", "6-8", "0-8"])
    ap.add_argument("--methods", nargs="+", default=[DEFAULT, "gen"], help="store methods to count")
    ap.add_argument("--start-rates", metavar="SEEDS", help="only the start-rate table over these seeds (e.g. 0-5)")
    a = ap.parse_args()
    if a.start_rates:
        print_start_rates(a.files, seed_set(a.start_rates))
        return
    cell = runs(a.files)
    workloads = sorted({w for w, _ in cell})
    variants = sorted({m for f in a.files for m in (json.loads(x)["method"] for x in f.read_text().splitlines())})
    variants = [v for v in variants if v != ROUND4_DEFAULT]
    names = a.methods + variants

    def median(w: str, m: str, seeds: list[int]) -> float | None:
        got = cell.get((w, m), {})
        return statistics.median(got[s] for s in seeds) if all(s in got for s in seeds) else None

    print("| method | " + " | ".join(f"seeds {s}: within 1% / better than GeN" for s in a.sets) + " |")
    print("| --- |" + " --- |" * len(a.sets))
    for m in names:
        cells = []
        for text in a.sets:
            seeds = seed_set(text)
            tuned = {}
            for w in workloads:
                grid = [median(w, f"grid{i}", seeds) for i in range(7)]
                if all(g is not None for g in grid):
                    tuned[w] = min(grid)  # type: ignore[type-var]
            meds = {w: median(w, m, seeds) for w in tuned}
            gens = {w: median(w, "gen", seeds) for w in tuned}
            if not tuned or any(v is None for v in meds.values()):
                cells.append("—")
                continue
            within = sum(meds[w] <= tuned[w] + 0.01 * abs(tuned[w]) for w in tuned)  # type: ignore[operator]
            better = sum(g is not None and meds[w] < g for w, g in gens.items())  # type: ignore[operator]
            cells.append(f"{within} / {better} of {len(tuned)}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nEach variant against the default, run by run (final loss ratio; positive losses only):\n")
    print("| variant | seeds | lower by > 1% | higher by > 1% | geometric mean of the ratios |")
    print("| --- | --- | --- | --- | --- |")
    for v in variants:
        pairs = [
            (cell[(w, v)][s], cell[(w, DEFAULT)][s])
            for w in workloads
            for s in cell.get((w, v), {})
            if s in cell.get((w, DEFAULT), {}) and cell[(w, DEFAULT)][s] > 0 and 0 < cell[(w, v)][s] < math.inf
        ]
        if not pairs:
            continue
        seeds = sorted({s for w in workloads for s in cell.get((w, v), {})})
        lower = sum(x < 0.99 * y for x, y in pairs)
        higher = sum(x > 1.01 * y for x, y in pairs)
        gm = math.exp(sum(math.log(x / y) for x, y in pairs) / len(pairs))
        print(f"| {v} | {seeds[0]}-{seeds[-1]} ({len(pairs)} runs) | {lower} | {higher} | {gm:.3f} |")


if __name__ == "__main__":
    main()
