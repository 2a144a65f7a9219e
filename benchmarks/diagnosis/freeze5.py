"""Automatic freezing on MiniLM / VADER: which groups the influence run ranks, and whether the
frozen runs are told the step budget (so they anneal), against BitFit and head-only training run
in the same script. One JSON line per run, appended to ``--out``.

    .venv/bin/python benchmarks/diagnosis/freeze5.py --variants modules parameters+budget \\
        --seeds 0 1 2 --heads mdn gaussian --out benchmarks/diagnosis/runs/freeze5.jsonl
    .venv/bin/python benchmarks/diagnosis/freeze5.py --baselines --seeds 0 1 2 --out ...
    .venv/bin/python benchmarks/diagnosis/freeze5.py --table --seeds 0 1 2 --out ...   # medians

A variant is a grouping of ``FREEZE_GROUPINGS`` with flags:

- ``+budget``: the frozen runs are told the step budget;
- ``+pergroup``: the frozen runs fit every kept group at each refresh (else HiDLR's defaults);
- ``+prefix20``: an influence run over the first 20 steps (four refreshes) instead of 10;
- ``+fresh``: the frozen runs start a new HiDLR at the start rate instead of taking the influence
  run's optimizer state;
- ``+growconcave``: a prototype rule in the engine (``common.patch_grow_concave``; with
  ``+untilarrived`` its limited form), for the whole process;
- ``+restartphase``: a prototype (``common.patch_restart_phase``) in which the restart after
  freezing lets the rates travel and grow again, for the whole process;
- ``+reachNN``: the plans keep only groups among the last NN% of the groups (in forward order:
  the head and the top of the encoder), so that the backward pass stops there
  (``plan_from_scores(max_reach=...)``; the records of d083e25 name it ``+depthNN``, its first name);
- ``+adam``: also train each plan, applied by name to the fresh pretrained model, with plain Adam
  over BitFit's rate grid: which parameters the plan picks, apart from which rates Hi-DLR picks
  (records ``VARIANT:adam``; its Hi-DLR runs repeat the plain grouping's); for the ``lora-*``
  groupings over LoRA's grid.

Groupings named ``lora-*`` put LoRA adapters on every linear map and rank them beside the model's
own tensors; their ``freeze-lora-size`` budget is LoRA's count of trained parameters.

Records keep the scores and plans, not the rate traces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch
from common import patch_grow_concave, patch_restart_phase

from hidlr.bench.finetune import methods as M
from hidlr.bench.finetune.data import real_workload
from hidlr.bench.finetune.runner import run_freezing, run_lineup
from hidlr.bench.finetune.train import Setup, run_training
from hidlr.influence import apply_plan

BUDGETS = {"freeze-1%": 0.01, "freeze-5%": 0.05, "freeze-lora-size": 0.0169, "freeze-20%": 0.2}
LORA_ADAPTERS = 331_776  # parameters of LoRA r=8 on every linear map of MiniLM (methods.add_lora)
STEPS, BATCH = 100, 32


def slim(rec: dict, variant: str, commit: str) -> dict:
    res = rec["result"]
    out = {
        "variant": variant,
        "method": rec["method"],
        "head": rec["head"],
        "seed": rec["seed"],
        "lr": rec["lr"],
        "commit": commit,
        "val": res.get("val", {}).get("nll"),
        "test": {k: res.get("test", {}).get(k) for k in ("nll", "crps", "coverage", "tv_empirical")},
        "trainable": res.get("trainable_params"),
        "diverged": res.get("diverged"),
        "train_seconds": res.get("train_seconds"),
    }
    if "plan" in rec:
        out["plan"] = rec["plan"]
    return out


def tuned(records: list[dict]) -> dict[tuple, dict]:
    """Per (variant, method, head, seed): the record of lowest validation NLL (grids tuned)."""
    best: dict[tuple, dict] = {}
    for r in records:
        key = (r["variant"], r["method"], r["head"], r["seed"])
        if key not in best or r["val"] < best[key]["val"]:
            best[key] = r
    return best


def median_table(path: Path, seeds: list[int]) -> str:
    """Median test NLL over ``seeds`` per row (variant and method) and head; baselines tuned."""
    best = tuned([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    rows = sorted({(k[0], k[1]) for k in best})
    heads = sorted({k[2] for k in best})
    lines = ["| variant | method | " + " | ".join(f"{h} test NLL | {h} trainable" for h in heads) + " |"]
    lines.append("|---|---|" + "---:|---:|" * len(heads))
    for v, m in rows:
        cells = []
        for h in heads:
            rs = [best[(v, m, h, s)] for s in seeds if (v, m, h, s) in best]
            if len(rs) < len(seeds):
                cells += [f"{len(rs)} of {len(seeds)} seeds", ""]
                continue
            nll = statistics.median(r["test"]["nll"] for r in rs)
            spread = f" [{min(r['test']['nll'] for r in rs):.4f}, {max(r['test']['nll'] for r in rs):.4f}]"
            cells += [f"{nll:.4f}{spread}", f"{statistics.median(r['trainable'] for r in rs):,.0f}"]
        lines.append(f"| {v} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    ap.add_argument("--variants", nargs="*", default=[])
    ap.add_argument("--baselines", action="store_true", help="run BitFit and head-only (tuned grids)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--heads", nargs="+", default=list(M.HEADS))
    ap.add_argument("--budgets", nargs="+", default=list(BUDGETS))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if a.table:
        print(median_table(a.out, a.seeds))
        return
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    wl = real_workload(0, probe_size=48)
    table = M.method_table(False)
    budgets = {k: BUDGETS[k] for k in a.budgets}

    def emitter(variant: str):
        def emit(rec: dict) -> None:
            with a.out.open("a") as f:
                f.write(json.dumps(slim(rec, variant, commit)) + "\n")
            print(variant, rec["method"], rec["head"], rec["seed"], f"{rec['result']['test']['nll']:.4f}", flush=True)

        return emit

    if any("growconcave" in v.split("+") for v in a.variants):  # for every variant of this process: run them apart
        patch_grow_concave(until_arrived=any("untilarrived" in v.split("+") for v in a.variants))
    if any("restartphase" in v.split("+") for v in a.variants):  # likewise for the whole process
        patch_restart_phase()
    for seed in a.seeds:
        for head in a.heads:
            if a.baselines:
                run_lineup(wl, table, ["bitfit", "last-layer"], head, seed, STEPS, BATCH, emitter("baseline"), None)
            for v in a.variants:
                grouping, *flags = v.split("+")
                t0 = time.perf_counter()
                reach = next((int(f[5:]) / 100 for f in flags if f.startswith(("reach", "depth"))), None)
                run_budgets = budgets
                if grouping.startswith("lora") and "freeze-lora-size" in budgets:
                    # the same count as LoRA trains, now a share of a total that includes the adapters
                    total = sum(p.numel() for p in M.new_model(wl, head, seed).parameters())
                    run_budgets = {
                        **budgets,
                        "freeze-lora-size": budgets["freeze-lora-size"] * total / (total + LORA_ADAPTERS),
                    }
                info = run_freezing(
                    wl,
                    head,
                    seed,
                    STEPS,
                    BATCH,
                    run_budgets,
                    emitter(v),
                    None,
                    False,
                    grouping=grouping,
                    tell_budget="budget" in flags,
                    per_group="pergroup" in flags,
                    influence_share=0.2 if "prefix20" in flags else 0.1,
                    carry_state="fresh" not in flags,
                    max_reach=dict.fromkeys(run_budgets, reach) if reach else None,
                )
                print(v, head, seed, f"influence groups {info['groups']}, {time.perf_counter() - t0:.0f} s", flush=True)
                if "adam" not in flags:
                    continue
                for label, plan in info["plans"].items():
                    for lr in table["lora" if grouping.startswith("lora") else "bitfit"].grid:
                        model = M.new_model(wl, head, seed)
                        if grouping.startswith("lora"):
                            M.FREEZE_GROUPINGS[grouping](model)  # the adapters the plan names
                        apply_plan(model, plan)
                        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
                        res = run_training(Setup(model, opt, lr=lr), wl, STEPS, BATCH, seed)
                        record = {"method": label, "head": head, "seed": seed, "lr": lr, "result": res}
                        emitter(f"{v}:adam")(record)


if __name__ == "__main__":
    main()
