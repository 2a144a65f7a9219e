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

``capture-cross`` runs full mode (``+mode=full``, as round 30) and records the normalised cross
terms of its fits; ``analyze-cross`` sets their median in the window beside the same gaps and the
gap of full mode to the default.

    cd benchmarks/diagnosis
    ../../.venv/bin/python ratio_evidence.py capture runs/round31-decisions-a.jsonl \\
        --workloads bnn char-gpt digits-cnn-bn digits-finetune mdn
    ../../.venv/bin/python ratio_evidence.py analyze runs/round31-decisions-*.jsonl \\
        --gen runs/round29-gen-a.jsonl runs/round29-gen-b.jsonl
    ../../.venv/bin/python ratio_evidence.py capture-cross runs/round31-cross-a.jsonl --workloads ...
    ../../.venv/bin/python ratio_evidence.py analyze-cross runs/round31-cross-*.jsonl
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
from paired import load
from round4 import variant
from scipy.stats import spearmanr

from hidlr.bench.lr.runner import run_one
from hidlr.bench.lr.workloads import get as get_workloads
from hidlr.optim import rules
from hidlr.optim.refresh import Refresher

DEFAULT = "hidlr+anneal=0.2"
FULL = "hidlr+anneal=0.2+mode=full"
RUNS = Path(__file__).parent / "runs"
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
    write_runs(out, workloads, seeds, DEFAULT, log, "refreshes")


def write_runs(out: Path, workloads: list[str], seeds: list[int], method: str, log: list, key: str) -> None:
    """Run ``method`` on each workload and seed, appending one JSON line per run to ``out``: its final
    loss and, under ``key``, what the patched engine appended to ``log`` during the run."""
    torch.set_num_threads(1)
    with out.open("a") as f:
        for w in workloads:
            wl = get_workloads([w])[0]
            for seed in seeds:
                log.clear()
                rec = run_one(wl, variant(method, None), seed, wl.steps)
                f.write(json.dumps({"workload": w, "seed": seed, "final": rec["final_loss"], key: log}) + "\n")
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


def capture_cross(out: Path, workloads: list[str], seeds: list[int]) -> None:
    """Run full mode on each workload and seed; one JSON line per run with the normalised cross
    terms ``A_kl / sqrt(A_kk A_ll)`` of every refresh's fit (pairs with both diagonal terms positive)."""
    log: list[dict] = []
    step: dict = {}
    refresh, newton_multiples = Refresher._refresh, rules.newton_multiples

    def refresh_at_step(self, *args, **kwargs):
        step.update(t=self._t, T=self.rules.total_steps)
        return refresh(self, *args, **kwargs)

    def recording_newton_multiples(fit, active, mode, min_r2):
        idx = [g for g in range(len(active)) if active[g]]
        if mode == "full" and len(idx) > 1:
            a = fit.A
            cross = [
                float(a[i, j]) / math.sqrt(float(a[i, i]) * float(a[j, j]))
                for i in idx
                for j in idx
                if i < j and float(a[i, i]) > 0 and float(a[j, j]) > 0
            ]
            log.append({"t": step["t"], "T": step["T"], "cross": cross})
        return newton_multiples(fit, active, mode, min_r2)

    Refresher._refresh = refresh_at_step
    rules.newton_multiples = recording_newton_multiples
    write_runs(out, workloads, seeds, FULL, log, "log")


def analyze_cross(files: list[Path]) -> None:
    """Each run's median over the growth window of its mean cross term, beside its gaps: default to
    GeN (rounds 27 and 29) and full mode to the default (round 30), on the same seed."""
    stored = load([RUNS / "round27-base.jsonl", *RUNS.glob("round29-gen-*.jsonl"), *RUNS.glob("round30-full-*.jsonl")])
    rows: dict[str, list[dict[str, float]]] = {}
    for f in files:
        for line in f.read_text().splitlines():
            c = json.loads(line)
            w, s = c["workload"], c["seed"]
            base, gen = stored[(w, "hidlr+anneal=0.2")][s], stored[(w, "gen+anneal=0.2")][s]
            window = [statistics.mean(x["cross"]) for x in c["log"] if x["cross"] and x["t"] < 0.25 * x["T"]]
            rows.setdefault(w, []).append(
                {
                    "cross": statistics.median(window) if window else math.nan,
                    "to_gen": (base - gen) / abs(gen),
                    "full": (stored[(w, FULL)][s] - base) / abs(base),
                    "same": float(c["final"] == stored[(w, FULL)][s]),
                }
            )

    def median(rs: list[dict[str, float]], k: str) -> float:
        return statistics.median(x[k] for x in rs if not math.isnan(x[k]))

    print(f"runs equal to round 30's full mode: {sum(x['same'] for rs in rows.values() for x in rs):.0f}")
    print("| workload | default to GeN | full mode to the default | normalised cross term in the window |")
    print("| --- | --- | --- | --- |")
    for w, rs in sorted(rows.items(), key=lambda kv: median(kv[1], "to_gen")):
        print(f"| {w} | {median(rs, 'to_gen'):+.1%} | {median(rs, 'full'):+.1%} | {median(rs, 'cross'):+.2f} |")
    for k in ("to_gen", "full"):
        valid = {w: [x for x in rs if not math.isnan(x["cross"])] for w, rs in rows.items()}
        across = spearmanr(
            [x["cross"] for rs in valid.values() for x in rs], [x[k] for rs in valid.values() for x in rs]
        )
        dev = [(x["cross"] - median(rs, "cross"), x[k] - median(rs, k)) for rs in valid.values() if rs for x in rs]
        within = spearmanr(*zip(*dev))
        print(
            f"- with the gap {k}: Spearman {across.statistic:+.2f} (p {across.pvalue:.3f}) over runs, "
            f"{within.statistic:+.2f} (p {within.pvalue:.3f}) within workloads"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("capture", "capture-cross"):
        cap = sub.add_parser(name)
        cap.add_argument("out", type=Path)
        cap.add_argument("--workloads", nargs="+", required=True)
        cap.add_argument("--seeds", nargs="+", type=int, default=list(range(9)))
    ana = sub.add_parser("analyze")
    ana.add_argument("files", nargs="+", type=Path)
    ana.add_argument("--gen", nargs="+", type=Path, required=True)
    sub.add_parser("analyze-cross").add_argument("files", nargs="+", type=Path)
    a = ap.parse_args()
    if a.command == "capture":
        capture(a.out, a.workloads, a.seeds)
    elif a.command == "capture-cross":
        capture_cross(a.out, a.workloads, a.seeds)
    elif a.command == "analyze":
        analyze(a.files, a.gen)
    else:
        analyze_cross(a.files)


if __name__ == "__main__":
    main()
