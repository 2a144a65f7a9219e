"""Round 31 of ``docs/diagnosis.md``: what inside a run tells the per-group ratios that help from
those that hurt. Rounds 29 and 30 place the whole difference between per-group rates and the
one-group rule (GeN) in the per-group refreshes of the growth window (the first quarter of the
step budget). ``capture`` runs the engine's default and records every refresh's per-group decision;
``analyze`` summarises the growth-window refreshes of each run and sets the summaries beside the
run's gap to GeN re-run on the same seed (round 29's runs):

- ``r2``: mean R^2 of the accepted per-group fits; ``acc``: share of the groups' fits accepted;
- ``disp``: spread (standard deviation) of the accepted groups' log Newton multiples within a
  refresh, averaged over the window's refreshes: how differently the groups ask to move;
- ``cons``: correlation of those deviations (about their mean) between consecutive refreshes: do
  the same groups ask for more each time;
- ``spread``: log of the largest over the smallest rate at the end of the window.

    cd benchmarks/diagnosis
    ../../.venv/bin/python ratio_evidence.py capture runs/round31-decisions-a.jsonl \\
        --workloads bnn char-gpt digits-cnn-bn digits-finetune mdn
    ../../.venv/bin/python ratio_evidence.py analyze runs/round31-decisions-*.jsonl \\
        --gen runs/round29-gen-a.jsonl runs/round29-gen-b.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from round4 import variant
from scipy.stats import spearmanr

from hidlr.bench.lr.runner import run_one
from hidlr.bench.lr.workloads import get as get_workloads
from hidlr.optim.refresh import Refresher

DEFAULT = "hidlr+anneal=0.2"
MEASURES = ("r2", "acc", "disp", "cons", "spread")


def capture(out: Path, workloads: list[str], seeds: list[int]) -> None:
    """Run the default on each workload and seed; one JSON line per run with every refresh's
    per-group decision (before the momentum correction, clip and smoothing) and the rates after."""
    log: list[dict[str, Any]] = []
    settle = Refresher._settle

    def recording_settle(self, decisions, loss0, forwards, scale):
        record = settle(self, decisions, loss0, forwards, scale)
        log.append(
            {
                "t": self._t,
                "T": self.rules.total_steps,
                "scale": scale,
                "loss": float(loss0),
                "groups": [
                    {"name": d.name, "rate": d.rate, "newton": d.newton_rate, "acc": d.accepted, "r2": d.r2}
                    for d in decisions
                ],
                "after": [d.estimate for d in record.groups],
            }
        )
        return record

    Refresher._settle = recording_settle
    torch.set_num_threads(1)
    with out.open("a") as f:
        for w in workloads:
            wl = get_workloads([w])[0]
            for seed in seeds:
                log.clear()
                rec = run_one(wl, variant(DEFAULT, None), seed, wl.steps)
                f.write(json.dumps({"workload": w, "seed": seed, "final": rec["final_loss"], "refreshes": log}) + "\n")
                f.flush()
                print(w, seed, rec["final_loss"], len(log), file=sys.stderr)


def window_measures(refreshes: list[dict[str, Any]]) -> dict[str, float]:
    """The growth window's summaries of one run (see the module docstring); NaN where undefined."""
    window = [r for r in refreshes if 0 < r["t"] < 0.25 * r["T"]]
    r2s: list[float] = []
    acc: list[float] = []
    disp: list[float] = []
    cons: list[float] = []
    prev: dict[str, float] | None = None
    for r in window:
        moving = [g for g in r["groups"] if g["rate"] > 0]
        accepted = [g for g in moving if g["acc"] and g["newton"]]
        if not moving:
            continue
        acc.append(len(accepted) / len(moving))
        r2s += [g["r2"] for g in accepted if g["r2"] is not None]
        logm = {g["name"]: math.log(g["newton"] / g["rate"]) for g in accepted}
        if len(logm) < 2:
            continue
        mean = statistics.mean(logm.values())
        disp.append(statistics.pstdev(logm.values()))
        dev = {k: v - mean for k, v in logm.items()}
        if prev:
            common = [k for k in dev if k in prev]
            norm = math.sqrt(sum(dev[k] ** 2 for k in common) * sum(prev[k] ** 2 for k in common))
            if len(common) > 1 and norm > 0:
                cons.append(sum(dev[k] * prev[k] for k in common) / norm)
        prev = dev
    rates = [e for e in (window[-1]["after"] if window else []) if e > 0]

    def mean_or_nan(xs: list[float]) -> float:
        return statistics.mean(xs) if xs else math.nan

    return {
        "r2": mean_or_nan(r2s),
        "acc": mean_or_nan(acc),
        "disp": mean_or_nan(disp),
        "cons": mean_or_nan(cons),
        "spread": math.log(max(rates) / min(rates)) if len(rates) > 1 else math.nan,
    }


def analyze(files: list[Path], gen_files: list[Path]) -> None:
    gen = {}
    for f in gen_files:
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r["lr0"] == "default":
                gen[(r["workload"], r["seed"])] = r["final_loss"]
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for f in files:
        for line in f.read_text().splitlines():
            c = json.loads(line)
            g = gen[(c["workload"], c["seed"])]
            rows[c["workload"]].append({"gap": (c["final"] - g) / abs(g), **window_measures(c["refreshes"])})

    def median(rs: list[dict[str, float]], k: str) -> float:
        xs = [x[k] for x in rs if not math.isnan(x[k])]
        return statistics.median(xs) if xs else math.nan

    print("| workload | gap to GeN (median) | " + " | ".join(MEASURES) + " |")
    print("| --- | --- |" + " --- |" * len(MEASURES))
    for w, rs in sorted(rows.items(), key=lambda kv: median(kv[1], "gap")):
        print(f"| {w} | {median(rs, 'gap'):+.1%} | " + " | ".join(f"{median(rs, k):.2f}" for k in MEASURES) + " |")
    print("\nSpearman correlation with the gap to GeN: over all runs; within workloads (deviations from")
    print("each workload's medians)\n")
    for k in MEASURES:
        pairs = [(x[k], x["gap"]) for rs in rows.values() for x in rs if not math.isnan(x[k])]
        within = [
            (x[k] - median(rs, k), x["gap"] - median(rs, "gap"))
            for rs in rows.values()
            for x in rs
            if not math.isnan(x[k])
        ]
        across = spearmanr(*zip(*pairs))
        inside = spearmanr(*zip(*within))
        print(
            f"- {k}: {across.statistic:+.2f} (p {across.pvalue:.3f}); within {inside.statistic:+.2f} "
            f"(p {inside.pvalue:.3f}); {len(pairs)} runs"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("out", type=Path)
    cap.add_argument("--workloads", nargs="+", required=True)
    cap.add_argument("--seeds", nargs="+", type=int, default=list(range(9)))
    ana = sub.add_parser("analyze")
    ana.add_argument("files", nargs="+", type=Path)
    ana.add_argument("--gen", nargs="+", type=Path, required=True)
    a = ap.parse_args()
    if a.command == "capture":
        capture(a.out, a.workloads, a.seeds)
    else:
        analyze(a.files, a.gen)


if __name__ == "__main__":
    main()
