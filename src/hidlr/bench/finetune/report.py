"""Summary, goal checks, Markdown report and plots of the fine-tuning benchmark."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from hidlr.bench.lr.goals import relative_gap
from hidlr.bench.reporting import format_seconds, markdown_table

METRICS = ("nll", "crps", "coverage", "tv_empirical")


def _select(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (method, head): one record per seed (a grid's best validation NLL)."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    spent: dict[tuple[str, str, int], int] = {}
    for r in records:
        key = (r["method"], r["head"], r["seed"])
        spent[key] = spent.get(key, 0) + 1
        val = r["result"].get("val", {}).get("nll", math.inf)
        if key not in out or val < out[key]["result"].get("val", {}).get("nll", math.inf):
            out[key] = r
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (m, h, _s), r in sorted(out.items()):
        grouped.setdefault((m, h), []).append({**r, "runs_spent": spent[(m, h, _s)]})
    return grouped


def _stat(values: list[float]) -> dict[str, float] | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"method/head": {metric: {median, min, max, n}, ...}}`` over seeds."""
    out = {}
    for (method, head), rs in _select(records).items():
        ok = [r for r in rs if "test" in r["result"]]
        row: dict[str, Any] = {
            "method": method,
            "head": head,
            "seeds": len(rs),
            "diverged": len(rs) - len(ok),
            "lr": [r["lr"] for r in rs],
            "runs_spent": rs[0]["runs_spent"],
        }
        for m in METRICS:
            row[m] = _stat([r["result"]["test"][m] for r in ok])
        for m in ("nll", "crps"):
            row[f"disagree_{m}"] = _stat([r["result"]["test"]["disagree"][m] for r in ok])
            row[f"agree_{m}"] = _stat([r["result"]["test"]["agree"][m] for r in ok])
        res = [r["result"] for r in rs]
        row["trainable_params"] = _stat([float(x["trainable_params"]) for x in res])
        row["step_seconds"] = _stat([x["step_seconds_median"] for x in res])
        row["train_seconds"] = _stat([x.get("train_seconds_with_prefix", x["train_seconds"]) for x in res])
        row["memory_mb"] = _stat([x["memory_bytes"].get("total", math.nan) / 2**20 for x in res])
        out[f"{method}/{head}"] = row
    return out


def _med(row: dict[str, Any] | None, key: str) -> float:
    s = row.get(key) if row else None
    return s["median"] if s else math.nan


def goals(
    summary: dict[str, dict[str, Any]],
    heads: list[str],
    freeze_labels: list[str],
    total_params: int,
    costs: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """The issue's goals, checked on the measured medians (one line each, whatever the outcome);
    with ``costs`` (:func:`~hidlr.bench.finetune.runner.measure_costs`), what each frozen plan's step
    costs against its share of trainable parameters (the goal "a frozen group costs nothing")."""
    lines = []
    for head in heads:

        def get(m: str, head: str = head) -> dict[str, Any] | None:
            return summary.get(f"{m}/{head}")

        full = _med(get("full-adam"), "nll")
        for label in freeze_labels:
            row = get(label)
            if row is None or _med(row, "trainable_params") > 0.10 * total_params:
                continue
            nll = _med(row, "nll")
            frac = _med(row, "trainable_params") / total_params
            against_full = (
                f" vs full fine-tuning {full:.4f} ({100 * (nll - full) / abs(full):+.2f}%; goal within +1%: "
                f"{'met' if nll <= full + 0.01 * abs(full) else 'not met'})"
                if math.isfinite(full)
                else "; full fine-tuning not in this run (goal not checked)"
            )
            parts = [f"{label} ({100 * frac:.2f}% trainable), {head} head: test NLL {nll:.4f}{against_full}"]
            for other in ("bitfit", "last-layer", "lora"):
                o = _med(get(other), "nll")
                if math.isfinite(o):
                    op = _med(get(other), "trainable_params") / total_params
                    parts.append(f"vs {other} ({100 * op:.2f}%) {o:.4f}: {'beats' if nll < o else 'does not beat'}")
            lines.append("; ".join(parts))
        hl, lp, lo = (_med(get(m), "nll") for m in ("hidlr-lora", "lora-plus", "lora"))
        if math.isfinite(hl):
            plus = f"LoRA+ {lp:.4f} ({'beaten' if hl < lp else 'not beaten'})" if math.isfinite(lp) else "LoRA+ not run"
            tuned = (
                f"tuned LoRA {lo:.4f} ({100 * (hl - lo) / abs(lo):+.2f}%; goal within +1%: "
                f"{'met' if hl <= lo + 0.01 * abs(lo) else 'not met'})"
                if math.isfinite(lo)
                else "tuned LoRA not in this run (goal not checked)"
            )
            lines.append(f"Hi-DLR on LoRA, {head} head (one run): test NLL {hl:.4f}; {plus}; {tuned}")
    costs = costs or {}
    head_only = costs.get("last-layer")
    beside = f" (head only: {head_only['time_ratio']:.2f}x, {head_only['memory_ratio']:.2f}x)" if head_only else ""
    for label, c in costs.items():
        if c.get("reach") is not None:  # the frozen plans
            lines.append(
                f"cost of {label} ({100 * c['trainable_ratio']:.2f}% trainable, backward reach "
                f"{100 * c['reach']:.0f}%): {c['time_ratio']:.2f}x the step time and {c['memory_ratio']:.2f}x the "
                f"memory of full fine-tuning{beside}"
            )
    if "mdn" in heads and "gaussian" in heads:
        for key in ("disagree_nll", "disagree_crps", "agree_nll", "agree_crps"):
            wins, total, detail = 0, 0, []
            for name, row in summary.items():
                m, h = name.split("/")
                g = summary.get(f"{m}/gaussian")
                if h != "mdn" or g is None or not (math.isfinite(_med(row, key)) and math.isfinite(_med(g, key))):
                    continue
                total += 1
                wins += _med(row, key) < _med(g, key)
                if _med(row, key) >= _med(g, key):
                    detail.append(m)
            where = (
                "raters disagree (rater sd above the test median)"
                if key.startswith("disagree")
                else "raters agree (rater sd at most the median)"
            )
            lines.append(
                f"MDN vs Gaussian head, test {key.split('_')[1].upper()} where {where}: "
                f"MDN better for {wins} of {total} methods" + (f"; not for {', '.join(detail)}" if detail else "")
            )
    return lines


def paired(records: list[dict[str, Any]], heads: list[str], freeze_labels: list[str]) -> list[dict[str, Any]]:
    """The goals' comparisons seed by seed: for each (method, baseline) of a goal that both ran, the
    relative gap of test NLL on every seed both finished (each a grid's run chosen on validation),
    its median, and on how many seeds the method ends lower. Medians of a few seeds decide a 1% line
    by the draw; the pairs say which differences are consistent."""
    chosen = _select(records)
    pairs = [(label, base) for label in freeze_labels for base in ("full-adam", "bitfit", "last-layer")]
    pairs += [(label, "lora") for label in freeze_labels if label.startswith("freeze-lora-size")]
    pairs += [("hidlr-lora", "lora"), ("hidlr-lora", "lora-plus")]
    nll = {
        key: {r["seed"]: r["result"]["test"]["nll"] for r in rs if "test" in r["result"]} for key, rs in chosen.items()
    }
    rows = []
    for head in heads:
        for method, base in pairs:
            a, b = nll.get((method, head), {}), nll.get((base, head), {})
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            gaps = [relative_gap(a[s], b[s]) for s in seeds]
            rows.append(
                {
                    "head": head,
                    "method": method,
                    "baseline": base,
                    "seeds": seeds,
                    "median_gap": statistics.median(gaps),
                    "lower": sum(g < 0 for g in gaps),
                }
            )
    return rows


def _fmt(stat: dict[str, float] | None, digits: int = 4, scale: float = 1.0) -> str:
    if stat is None:
        return "—"
    m, lo, hi = stat["median"] * scale, stat["min"] * scale, stat["max"] * scale
    if stat["n"] == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(results: dict[str, Any]) -> str:
    summary, meta = results["summary"], results["meta"]
    total = meta["total_params"]
    intro = (
        f"Workload: {meta['workload']}. Task: from a token's text, the distribution of one rater's "
        "score (-4..4) on the VADER lexicon; tokens split 70/10/20 (seed "
        f"{meta['split_seed']}); test scores against the ten held-out raters' individual ratings."
    )
    legend = (
        "Columns: medians over seeds, [min, max] when several. NLL: -log of the predicted mass of each "
        "rating's unit interval (nats per rating). Coverage: share of individual ratings in the central 90% "
        "interval. TV: total variation to each token's ten-rating distribution. Step: median wall-clock "
        "of a training step without probes; runs were made one after another under varying machine "
        "load, so compare times only in the side-by-side cost table below. Memory: parameters + gradients "
        "+ optimizer state + activations saved for backward, at the last step."
    )
    if meta.get("combined_from"):  # several runs reported together (:func:`hidlr.bench.finetune.combine`)
        setup = (
            f"Steps per run: {meta['steps']}, batch "
            f"{meta['batch_size']} tokens (all ten ratings each); seeds {meta['seeds']}; rates in a grid tuned "
            f"on validation NLL. Reported together by `{meta['command']}` (commit {meta.get('git_commit')}) from "
            + "; ".join(
                f"`{p['folder']}` (seeds {p['seeds']}, commit {p['git_commit']}, `{p['command']}`)"
                for p in meta["combined_from"]
            )
            + "; a later folder's run replaces the same run of an earlier one."
        )
    else:
        setup = (
            f"Steps per run: {meta['steps']}, batch {meta['batch_size']} tokens (all ten ratings each); seeds "
            f"{meta['seeds']}; rates in a grid tuned on validation NLL. Command: `{meta['command']}`; commit "
            f"{meta.get('git_commit')}; wall clock "
            f"{format_seconds(meta['wall_seconds']) if meta.get('wall_seconds') else 'not recorded (interrupted)'} on "
            f"{meta['cpu_count']} CPU cores shared with other work (load average at start "
            f"{meta.get('load_average_at_start')}); torch threads {meta['torch_threads']}."
        )
    lines = [f"# Fine-tuning benchmark ({meta['mode']})", ""]
    if meta.get("note"):
        lines += [f"**{meta['note']}**", ""]
    lines += [intro, setup, "", legend, ""]
    for head in meta["heads"]:
        rows = []
        for name, r in summary.items():
            m, h = name.split("/")
            if h != head:
                continue
            share = f"{_med(r, 'trainable_params'):,.0f} ({100 * _med(r, 'trainable_params') / total:.2f}%)"
            rows.append(
                [
                    m,
                    _fmt(r["nll"]),
                    _fmt(r["crps"]),
                    _fmt(r["coverage"], 3),
                    _fmt(r["tv_empirical"], 3),
                    _fmt(r["disagree_nll"]),
                    share,
                    _fmt(r["step_seconds"], 1, 1000),
                    _fmt(r["memory_mb"], 0),
                    r["runs_spent"],
                    ", ".join(f"{x:g}" for x in r["lr"][:1]),
                ]
            )
        rows.sort(key=lambda row: row[1])
        lines += [
            f"## {head} head",
            "",
            markdown_table(
                [
                    "method",
                    "test NLL",
                    "CRPS",
                    "cov. 90%",
                    "TV",
                    "NLL (raters disagree)",
                    "trainable",
                    "step ms",
                    "memory MB",
                    "runs",
                    "rate",
                ],
                rows,
            ),
            "",
        ]
    lines += ["## Goals (measured)", ""] + [f"- {g}" for g in results["goals"]] + [""]
    pairs = results.get("paired")
    if pairs:
        lines += [
            "The goals' comparisons seed by seed (test NLL; each grid's run chosen on validation): the "
            "median over seeds of the relative gap, and the seeds on which the method ends lower.",
            "",
            markdown_table(
                ["head", "method", "against", "median gap", "seeds lower"],
                [
                    [
                        p["head"],
                        p["method"],
                        p["baseline"],
                        f"{100 * p['median_gap']:+.2f}%",
                        f"{p['lower']} of {len(p['seeds'])}",
                    ]
                    for p in pairs
                ],
            ),
            "",
        ]
    cost = results.get("costs")
    if cost:
        rows = [
            [
                c,
                f"{v['trainable_params']:,}",
                f"{100 * v['trainable_ratio']:.2f}%",
                f"{1000 * v['step_seconds']:.1f}",
                f"{v['time_ratio']:.2f}",
                f"{v['memory']['total'] / 2**20:.0f}",
                f"{v['memory_ratio']:.2f}",
                "—" if v.get("reach") is None else f"{100 * v['reach']:.0f}%",
            ]
            for c, v in cost.items()
        ]
        note = (
            "Plain Adam steps on one fixed batch, configurations alternating in one process (ratios are "
            "to the full model, measured side by side). Backward reach: the share of the plan's groups, "
            "from its first kept group to the head, that the backward pass runs through."
        )
        lines += [
            "## What a frozen group costs",
            "",
            note,
            "",
            markdown_table(
                [
                    "configuration",
                    "trainable",
                    "share",
                    "step ms",
                    "time ratio",
                    "memory MB",
                    "memory ratio",
                    "backward reach",
                ],
                rows,
            ),
            "",
        ]
    infl = results.get("influence")
    if infl:
        lines += ["## Influence ranking (first influence run)", "", infl[0]["table_md"], ""]
    lines += ["## Methods", ""] + [f"- **{k}**: {v}" for k, v in meta["methods"].items()]
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """influence_per_layer.png (bars, log scale) and rates_over_time.png (Hi-DLR's rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    infl = results.get("influence")
    if infl:
        table = sorted(infl[0]["table"], key=lambda r: r["name"])
        fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(table)), 4))
        ax.bar(
            range(len(table)),
            [max(r["influence"], 1e-12) for r in table],
            color=["C1" if r["name"].startswith("head") else "C0" for r in table],
        )
        ax.set_yscale("log")
        ax.set_xticks(range(len(table)), [r["name"].replace("encoder.", "") for r in table], rotation=90, fontsize=6)
        ax.set_ylabel("predicted decrease b²/2a (nats; 0 drawn at 1e-12)")
        ax.set_title(f"Influence per module ({infl[0]['head']} head, after {infl[0]['prefix_steps']} steps)")
        fig.tight_layout()
        fig.savefig(out / "influence_per_layer.png", dpi=130)
        plt.close(fig)
        written.append("influence_per_layer.png")
    runs = [
        r
        for r in results["runs"]
        if r["method"] in ("hidlr-layers", "hidlr-lora")
        and r["seed"] == 0
        and r["head"] == results["meta"]["heads"][0]
        and r["result"].get("rates")
    ]
    if runs:
        fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
        for ax, r in zip(axes[0], runs):
            hist = r["result"]["rates"]
            for name in hist[0]["rates"]:
                ax.plot(
                    [h["step"] for h in hist],
                    [h["rates"][name] for h in hist],
                    marker=".",
                    drawstyle="steps-post",  # a rate holds until the next refresh
                    label=name,
                )
            ax.set_yscale("log")
            ax.set_xlabel("step (points: refreshes)")
            ax.set_ylabel("rate chosen (before the anneal)")
            ax.set_title(r["method"])
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "rates_over_time.png", dpi=130)
        plt.close(fig)
        written.append("rates_over_time.png")
    return written
