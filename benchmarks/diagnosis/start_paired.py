"""Start-rate invariance of round4.py run files, paired by seed, with the benchmark's own definition
(:func:`hidlr.bench.lr.goals.start_rates_paired`): per workload and variant, each start rate's runs
against the same variant's run from the workload's default rate on the same seed; the spread of
those median gaps (the default counting as 0) and whether it is within 2%. Round 20 of
``docs/diagnosis.md``.

    .venv/bin/python benchmarks/diagnosis/start_paired.py benchmarks/diagnosis/runs/round20-*.jsonl \
        --variants hidlr+anneal=0.2 hidlr+anneal=0.2+arrivalcredit=16 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hidlr.bench.lr.goals import start_rates_paired
from hidlr.bench.lr.workloads import get as get_workloads


def as_store_records(files: list[Path], variants: list[str], seeds: list[int]) -> list[dict]:
    """round4.py records in the store's form: the default-rate run as the method at its ``lr``, the
    other start rates as variants (``varies``) at their ``lr0``."""
    default_lr = {wl.name: wl.default_lr for wl in get_workloads()}
    out = []
    for f in files:
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r["method"] not in variants or r["seed"] not in seeds:
                continue
            rec = {k: r.get(k) for k in ("workload", "method", "seed", "status", "final_loss")}
            if r["lr0"] == "default":
                rec["lr"] = default_lr[r["workload"]]
            else:
                rec.update(varies=r["method"], lr0=float(r["lr0"]), method=f"{r['method']}@lr0={r['lr0']}")
            out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    paired = start_rates_paired(as_store_records(a.files, a.variants, a.seeds))
    rates = sorted({lr0 for wl in paired.values() for m in wl.values() for lr0 in m["by_lr0"]})
    print("| workload | variant | " + " | ".join(f"lr0={x:g}" for x in rates) + " | spread | within 2% |")
    print("| --- | --- |" + " --- |" * (len(rates) + 2))
    within = dict.fromkeys(a.variants, 0)
    for wl in sorted(paired):
        for v in a.variants:
            m = paired[wl].get(v)
            if m is None:
                continue
            cells = [m["by_lr0"].get(x) for x in rates]
            text = [f"{c['gap']:+.1%} ({c['higher']}/{c['lower']})" if c else "" for c in cells]
            print(f"| {wl} | {v} | " + " | ".join(text) + f" | {m['spread']:.1%} | {'yes' if m['within'] else 'no'} |")
            within[v] += m["within"]
    print()
    for v, n in within.items():
        print(f"{v}: within 2% on {n} of {sum(v in paired[wl] for wl in paired)} workloads")


if __name__ == "__main__":
    main()
