"""Plots and a summary table from ``trajectory.py`` results.

    .venv/bin/python benchmarks/diagnosis/plot_trajectory.py benchmarks/diagnosis/results/trajectory-*.json \
        --out docs/diagnosis

Per workload, one figure with three panels: (1) Hi-DLR's per-group rates over the run with the
exact one-step Newton rates at each refresh, the tuned grid rate and the look-ahead-best uniform
rates; (2) probe estimates of b_k and a_k over their exact values; (3) the exact one-group Newton
rate after training at each uniform rate (edge of stability: a Newton rate that tracks the rate).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TUNED = Path("benchmarks/results/lr/results.json")


def tuned_rate(name: str) -> float | None:
    if not TUNED.exists():
        return None
    summary = json.loads(TUNED.read_text())["summary"]["workloads"].get(name)
    if not summary:
        return None
    grid = {k: v for k, v in summary["table"].items() if k.startswith("grid") and v["loss"]["median"] is not None}
    best = min(grid.values(), key=lambda v: v["loss"]["median"])
    return best["lr"]


def best_of(cands: dict[str, dict], key: str) -> float | None:
    ok = {float(r): v[key] for r, v in cands.items() if v.get("status") == "ok" and v.get(key) is not None}
    return min(ok, key=ok.get) if ok else None


def plot(res: dict, out: Path) -> dict:
    name, groups = res["workload"], res["groups"]
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    steps = res["trace"]["step"]
    for k, g in enumerate(groups[:8]):
        line, = ax[0].plot(steps, [lr[k] for lr in res["trace"]["lrs"]], label=g)
        pts = [(r["step"], r["newton_exact"][k]) for r in res["refreshes"]
               if r["newton_exact"][k] == r["newton_exact"][k] and r["newton_exact"][k] > 0]
        if pts:
            ax[0].scatter(*zip(*pts), s=10, color=line.get_color(), marker="x")
    one = [(r["step"], r["newton_one_exact"]) for r in res["refreshes"]
           if r["newton_one_exact"] == r["newton_one_exact"] and r["newton_one_exact"] > 0]
    if one:
        ax[0].scatter(*zip(*one), s=14, color="k", marker="+", label="exact one-group Newton")
    tr = tuned_rate(name)
    if tr:
        ax[0].axhline(tr, color="grey", ls="--", label=f"tuned grid {tr:g}")
    la_val = [(lk["step"], best_of(lk["uniform"], "val")) for lk in res["lookahead"]]
    la_tr = [(lk["step"], best_of(lk["uniform"], "train")) for lk in res["lookahead"]]
    ax[0].scatter(*zip(*la_val), marker="s", facecolors="none", edgecolors="r", s=40,
                  label=f"look-ahead best ({res['ahead']} steps, val)")
    ax[0].scatter(*zip(*la_tr), marker="o", facecolors="none", edgecolors="b", s=40, label="look-ahead best (train)")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("rate")
    ax[0].set_title(f"{name}: rates")
    ax[0].legend(fontsize=6)
    rb, ra = [], []
    for r in res["refreshes"]:
        for k in range(len(groups)):
            pb, eb, pa, ea = r["probe_b"][k], r["exact_b"][k], r["probe_a"][k], r["exact_A"][k][k]
            if pb is not None and eb and abs(eb) > 0:
                rb.append((r["step"], pb / eb))
            if pa is not None and ea and ea > 0:
                ra.append((r["step"], pa / ea))
    if rb:
        ax[1].scatter(*zip(*rb), s=8, label="probe b / exact b")
    if ra:
        ax[1].scatter(*zip(*ra), s=8, label="probe a / exact a")
    ax[1].axhline(1.0, color="grey", lw=0.5)
    ax[1].set_yscale("symlog", linthresh=0.1)
    ax[1].set_xlabel("step")
    ax[1].set_title("forward-probe estimates / exact (same batch)")
    ax[1].legend(fontsize=7)
    for lk in res["lookahead"]:
        pts = [(float(r), v["newton_one"]) for r, v in lk["uniform"].items()
               if v.get("status") == "ok" and v.get("newton_one") and v["newton_one"] > 0]
        if pts:
            ax[2].plot(*zip(*pts), marker=".", label=f"from step {lk['step']}")
    rates = [float(r) for r in res["lookahead"][0]["uniform"]]
    lo, hi = min(rates), max(rates)
    ax[2].plot([lo, hi], [lo, hi], color="grey", ls=":", label="Newton rate = rate")
    ax[2].set_xscale("log")
    ax[2].set_yscale("log")
    ax[2].set_xlabel(f"uniform rate trained for {res['ahead']} steps")
    ax[2].set_ylabel("exact one-group Newton rate after")
    ax[2].set_title("does the Newton rate track the rate?")
    ax[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / f"trajectory-{name}.png", dpi=80)
    plt.close(fig)
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    late = [lk for lk in res["lookahead"] if lk["step"] > 0]
    ratio_val = [best_of(lk["uniform"], "val") / statistics.median(lk["hidlr_lrs"]) for lk in late
                 if best_of(lk["uniform"], "val")]
    ratio_train = [best_of(lk["uniform"], "train") / statistics.median(lk["hidlr_lrs"]) for lk in late
                   if best_of(lk["uniform"], "train")]
    ratio_newton = [r["newton_one_exact"] / statistics.median(r["rates"]) for r in res["refreshes"]
                    if r["newton_one_exact"] == r["newton_one_exact"] and r["newton_one_exact"] > 0]
    coupling = []
    for r in res["refreshes"]:
        a = r["exact_A"]
        for i in range(len(a)):
            for j in range(i + 1, len(a)):
                if a[i][i] > 0 and a[j][j] > 0:
                    coupling.append(abs(a[i][j]) / math.sqrt(a[i][i] * a[j][j]))
    high = 10 * res["default_lr"]
    eos = [v["newton_one"] / float(r) for lk in res["lookahead"] for r, v in lk["uniform"].items()
           if float(r) >= high and v.get("status") == "ok" and v.get("newton_one") and v["newton_one"] > 0]
    low = [v["newton_one"] / float(r) for lk in res["lookahead"] for r, v in lk["uniform"].items()
           if float(r) <= res["default_lr"] / 10 and v.get("status") == "ok" and v.get("newton_one")
           and v["newton_one"] > 0]
    return {"workload": name, "coupling": med(coupling), "eos_high": med(eos), "eos_low": med(low),
            "probe_b_err": med([abs(math.log(x)) for _, x in rb if x > 0]),
            "probe_a_ratio": med([x for _, x in ra]), "lookahead_val_over_hidlr": med(ratio_val),
            "lookahead_train_over_hidlr": med(ratio_train), "newton_one_over_rate": med(ratio_newton),
            "tuned": tr}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/diagnosis"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = [plot(json.loads(f.read_text()), a.out) for f in a.files]
    print("| workload | probe b: median abs log error | probe a / exact a (median) | look-ahead best / Hi-DLR rate "
          "(val) | (train) | exact one-group Newton / Hi-DLR rate | tuned grid rate | coupling |A_kl|/sqrt(A_kk A_ll) "
          "| Newton / rate after training at >= 10x default | ... at <= default / 10 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workload']} | {r['probe_b_err']:.3f} | {r['probe_a_ratio']:.2f} "
              f"| {r['lookahead_val_over_hidlr']:.2g} "
              f"| {r['lookahead_train_over_hidlr']:.2g} | {r['newton_one_over_rate']:.2g} | {r['tuned']:.3g} "
              f"| {r['coupling']:.2f} | {r['eos_high']:.2g} | {r['eos_low']:.3g} |")


if __name__ == "__main__":
    main()
