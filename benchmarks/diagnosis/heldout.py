"""Generalisation suspect: what if the probe measured held-out loss instead of the training batch's?

An ORACLE experiment, not a method: the probe evaluates the workload's validation loss (the same
data the final score uses), so its figures bound from above what a held-out probe split could do;
a real held-out split costs training data. Compared with the same rule probing the training batch.

    .venv/bin/python benchmarks/diagnosis/heldout.py --workloads digits-lora digits-mlp-head-sgd \
        --seeds 0 1 2 --out benchmarks/diagnosis/results/heldout.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import hidlr_method, load, make_probe_with_val, median_loss, run_logged

from hidlr.bench.lr import runner

runner.make_probe = make_probe_with_val


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--workloads",
        nargs="+",
        default=["digits-lora", "digits-mlp-head-sgd", "digits-mlp-bias", "digits-cnn-bn", "mdn"],
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/diagnosis/results/heldout.jsonl"))
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    variants = {
        "diag (train batch)": ({}, False, "same"),
        "diag (oracle val)": ({}, False, "val"),
        "gen (train batch)": ({}, True, "same"),
        "gen (oracle val)": ({}, True, "val"),
    }
    for w in a.workloads:
        for name, (opts, one, probe) in variants.items():
            m = hidlr_method(name, opts, one_group=one, probe=probe)
            for s in a.seeds:
                run_logged(a.out, w, m, s, {"lr0": "default"})
    recs = load(a.out)
    print("| workload | " + " | ".join(variants) + " |")
    print("| --- |" + " --- |" * len(variants))
    for w in a.workloads:
        cells = [
            median_loss([r for r in recs if r["workload"] == w and r["method"] == v and r["seed"] in a.seeds])
            for v in variants
        ]
        print(f"| {w} | " + " | ".join(f"{c:.4g}" for c in cells) + " |")


if __name__ == "__main__":
    main()
