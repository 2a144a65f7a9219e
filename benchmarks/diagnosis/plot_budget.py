"""Figure for round 3: rates and validation loss with and without a known step budget.

Reads the full (not slimmed) records of ``round3.py growwin`` and the default's records, writes
``docs/diagnosis/round3-budget.png``.

    .venv/bin/python benchmarks/diagnosis/plot_budget.py \
        --records benchmarks/diagnosis/results/round3-probes.jsonl benchmarks/diagnosis/results/round3-growwin.jsonl \
        --out docs/diagnosis/round3-budget.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hidlr.bench.lr.workloads import get as get_workloads

WORKLOADS = ("digits-mlp-bias-long", "digits-finetune")
VARIANTS = {"diag-sep": ("default (rates may grow throughout)", "C0"), "diag-growwin0.25": ("total_steps given", "C3")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", nargs="+", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    recs = [json.loads(line) for f in a.records for line in f.read_text().splitlines()]
    fig, axes = plt.subplots(2, len(WORKLOADS), figsize=(5.5 * len(WORKLOADS), 7), squeeze=False)
    for col, wl in enumerate(WORKLOADS):
        budget = get_workloads([wl])[0].steps
        for method, (label, colour) in VARIANTS.items():
            rec = next((r for r in recs if r["workload"] == wl and r["method"] == method and r["seed"] == a.seed), None)
            if rec is None:
                raise SystemExit(f"no record of {method} on {wl}, seed {a.seed}")
            trace = rec["lr_trace"]
            for k in range(len(trace["lrs"][0])):
                axes[0, col].step(
                    trace["step"],
                    [row[k] for row in trace["lrs"]],
                    where="post",
                    color=colour,
                    alpha=1.0 - 0.35 * k,
                    label=f"{label}, group {k}",
                )
            n = len(rec["curve_loss"])
            steps = [i * budget / (n - 1) for i in range(n)]  # the runner evaluates at evenly spaced steps
            axes[1, col].plot(steps, rec["curve_loss"], color=colour, label=label)
        axes[0, col].set(yscale="log", title=f"{wl}, seed {a.seed}: rates", xlabel="step", ylabel="applied rate")
        axes[1, col].set(yscale="log", title="validation loss", xlabel="step", ylabel="loss")
        for ax in axes[:, col]:
            ax.axvline(0.25 * budget, color="grey", lw=0.8, ls=":")  # end of the growth window
        axes[0, col].legend(fontsize=7)
        axes[1, col].legend(fontsize=8)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
