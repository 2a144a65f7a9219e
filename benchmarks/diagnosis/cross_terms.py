"""Round 31 of ``docs/diagnosis.md``, the cross terms: does the coupling between groups that full
mode fits, measured inside the growth window, tell the workloads where per-group rates lose to the
one-group rule (GeN), or where full mode helps? ``capture`` runs full mode (``+mode=full``, as
round 30) and records, at every refresh, the normalised cross terms ``A_kl / sqrt(A_kk A_ll)`` of
its fit (pairs with both diagonal terms positive). ``analyze`` takes each run's median over the
growth window's refreshes of their mean and sets it beside the run's gap, default to GeN (rounds 27
and 29) and full mode to the default (round 30), on the same seed.

    cd benchmarks/diagnosis
    ../../.venv/bin/python cross_terms.py capture runs/round31-cross-a.jsonl \\
        --workloads bnn char-gpt digits-cnn-bn digits-finetune mdn
    ../../.venv/bin/python cross_terms.py analyze runs/round31-cross-*.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from paired import load
from round4 import variant
from scipy.stats import spearmanr

from hidlr.bench.lr.runner import run_one
from hidlr.bench.lr.workloads import get as get_workloads
from hidlr.optim import rules
from hidlr.optim.refresh import Refresher

FULL = "hidlr+anneal=0.2+mode=full"
RUNS = Path(__file__).parent / "runs"


def capture(out: Path, workloads: list[str], seeds: list[int]) -> None:
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
    torch.set_num_threads(1)
    with out.open("a") as f:
        for w in workloads:
            wl = get_workloads([w])[0]
            for seed in seeds:
                log.clear()
                rec = run_one(wl, variant(FULL, None), seed, wl.steps)
                f.write(json.dumps({"workload": w, "seed": seed, "final": rec["final_loss"], "log": log}) + "\n")
                f.flush()
                print(w, seed, rec["final_loss"], len(log), file=sys.stderr)


def analyze(files: list[Path]) -> None:
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
    cap = sub.add_parser("capture")
    cap.add_argument("out", type=Path)
    cap.add_argument("--workloads", nargs="+", required=True)
    cap.add_argument("--seeds", nargs="+", type=int, default=list(range(9)))
    ana = sub.add_parser("analyze")
    ana.add_argument("files", nargs="+", type=Path)
    a = ap.parse_args()
    if a.command == "capture":
        capture(a.out, a.workloads, a.seeds)
    else:
        analyze(a.files)


if __name__ == "__main__":
    main()
