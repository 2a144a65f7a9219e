"""How much of the tuned grid's lead is its own selection? (round 12 of ``docs/diagnosis.md``)

The benchmark's tuned grid is the grid point with the lowest median final validation loss over the
seeds, scored by that same median: the rate is chosen on the data that scores it. Each seed draws
its own train/validation split, initialisation and batches, so the seeds give an out-of-sample
score for free. Per workload, three scores of the grid:

- ``in-sample``: the benchmark's (best of the seven medians over seeds 0-8);
- ``leave one seed out``: for each seed, the rate whose median over the *other* eight seeds is
  lowest, scored on the held-out seed; the median over the nine held-out seeds;
- ``one-seed sweep``: what a user's sweep of one run per rate gets on new data: the rate that is
  best on one seed, scored on another; the median over all 72 ordered pairs.

Then the gap of Hi-DLR diag (median over seeds) to each, the goal count "within 1% of the tuned
grid" under each for every single-run method. Last, paired by seed: on how many of the nine seeds
Hi-DLR ends below the leave-one-seed-out grid run of the same seed, and the median over seeds of
its per-seed gap to that run (the seeds differ in split and initialisation by tens of percent on the
digits workloads, so a paired gap is the sharper measure; its count "within 1%" is printed too).
And the second goal paired the same way: per workload, the median over seeds of Hi-DLR diag's
gap to the one-group rule (``gen``) of the same seed, and on how many seeds it is lower. Nothing is
re-run.

    .venv/bin/python benchmarks/diagnosis/out_of_sample.py
"""

from __future__ import annotations

import itertools
import json
import statistics

from seed_sets import STORE
from seed_sets import runs as runs_of

from hidlr.bench.lr.goals import leave_one_seed_out, relative_gap

METHODS = ("hidlr-diag", "gen", "hidlr-full", "ldog", "default", "sf-adamw", "prodigy")
GRID = tuple(f"grid{i}" for i in range(7))
SCORES = ("in-sample", "leave one seed out", "one-seed sweep")
PAIRED = "paired by seed"


def load() -> tuple[dict[tuple[str, str], dict[int, float]], list[int]]:
    """(workload, method) -> seed -> final validation loss (inf for a failed run), the default start
    rate's runs of the store (:func:`seed_sets.runs`); and the store's seeds."""
    return runs_of([]), list(json.loads(STORE.read_text())["seeds"])


def grid_scores(grid: dict[str, dict[int, float]], seeds: list[int]) -> tuple[dict[str, float], list[float]]:
    """The grid's three scores (:data:`SCORES`), and its leave-one-seed-out loss per seed."""
    med = {m: statistics.median(v[s] for s in seeds) for m, v in grid.items()}
    loso = leave_one_seed_out(grid, seeds)
    one = [grid[min(grid, key=lambda m: grid[m][a])][b] for a, b in itertools.permutations(seeds, 2)]
    return dict(zip(SCORES, (min(med.values()), statistics.median(loso), statistics.median(one)))), loso


def paired_gap(method: dict[int, float], held_out: list[float], seeds: list[int]) -> float:
    """Median over seeds of ``(method - grid) / |grid|``, the grid's run being the held-out seed's
    leave-one-seed-out choice (``held_out``, in the order of ``seeds``)."""
    return statistics.median(relative_gap(method[s], g) for s, g in zip(seeds, held_out))


def main() -> None:
    runs, seeds = load()
    workloads = sorted({w for w, m in runs if m in GRID})
    counts = {(score, m): 0 for score in (*SCORES, PAIRED) for m in METHODS}
    present = dict.fromkeys(METHODS, 0)
    print(f"Grid scores and Hi-DLR diag's gap to each, seeds {seeds[0]}-{seeds[-1]}:\n")
    print(
        "| workload | "
        + " | ".join(SCORES)
        + " | hidlr-diag | "
        + " | ".join(f"gap, {s}" for s in SCORES)
        + " | seeds below the held-out grid run | median paired gap |"
    )
    print("| --- |" + " --- |" * (2 * len(SCORES) + 3))
    for w in workloads:
        grid = {m: runs[(w, m)] for m in GRID if (w, m) in runs}
        scores, loso = grid_scores(grid, seeds)
        for m in METHODS:
            if (w, m) not in runs:
                continue
            present[m] += 1
            value = statistics.median(runs[(w, m)][s] for s in seeds)
            for score, t in scores.items():
                counts[(score, m)] += value <= t + 0.01 * abs(t)
            counts[(PAIRED, m)] += paired_gap(runs[(w, m)], loso, seeds) <= 0.01
        h = runs[(w, "hidlr-diag")]
        value = statistics.median(h[s] for s in seeds)
        below = sum(h[s] < g for s, g in zip(seeds, loso))
        print(
            f"| {w} | "
            + " | ".join(f"{t:.4g}" for t in scores.values())
            + f" | {value:.4g} | "
            + " | ".join(f"{(value - t) / abs(t):+.1%}" for t in scores.values())
            + f" | {below} of {len(seeds)} | {paired_gap(h, loso, seeds):+.1%} |"
        )
    print("\nWithin 1% of the tuned grid (median over seeds, or lower), by the grid's score:\n")
    print("| method | " + " | ".join((*SCORES, PAIRED)) + " |")
    print("| --- |" + " --- |" * (len(SCORES) + 1))
    for m in METHODS:
        print(f"| {m} | " + " | ".join(f"{counts[(s, m)]} of {present[m]}" for s in (*SCORES, PAIRED)) + " |")
    print("\nHi-DLR diag against the one-group rule, paired by seed:\n")
    print("| workload | median paired gap | seeds lower |")
    print("| --- | --- | --- |")
    for w in workloads:
        h, g = runs[(w, "hidlr-diag")], runs[(w, "gen")]
        gaps = [relative_gap(h[s], g[s]) for s in seeds]
        print(f"| {w} | {statistics.median(gaps):+.1%} | {sum(x < 0 for x in gaps)} of {len(seeds)} |")


if __name__ == "__main__":
    main()
