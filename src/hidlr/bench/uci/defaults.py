"""Default fits, no tuning: what a user gets from ``Model().fit(X, y)`` on real data.

For scikit-learn's diabetes data (random 75/25 splits: 331 training rows) and the UCI sets (their
standard splits), every model is fitted with its defaults (only ``random_state`` = split index,
and ``refit`` for the variant that refits), and scored once on the test rows: log-likelihood,
RMSE, and coverage and width of the 90% central intervals. Beside each figure, the tuned UCI
protocol's result for the same model, set and splits (from ``benchmarks/results/uci/results.json``,
with the model's default optimizer), paired by split.

Entry point: :func:`run` (``python -m hidlr.bench.uci.defaults --help``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hidlr.bench import harness
from hidlr.bench import reporting as rep

SETS = ("diabetes", "concrete", "energy", "kin8nm", "wine-quality-red", "yacht")
MODELS = ("mdn", "bnn", "mc_dropout", "deep_ensemble", "mdn_ensemble", "bayesian_mdn")
VARIANTS = ("early-stop", "early-stop+refit", "early-stop+robust", "early-stop+unscaled", "early-stop+wide")
#: the hidden layers of the ``+wide`` variant (the estimators' default is one layer of 50)
WIDE = (100, 100)
#: the optimizer each model trains with by default (to pick the matching tuned-protocol records)
DEFAULT_OPTIMIZER = {
    "mdn": "adam",
    "bnn": "hidlr",
    "mc_dropout": "hidlr",
    "deep_ensemble": "adam",
    "mdn_ensemble": "adam",
    "bayesian_mdn": "hidlr",
}
TUNED_RESULTS = Path("benchmarks/results/uci/results.json")


def default_model(name: str, variant: str, seed: int) -> Any:
    """The model ``name`` with its defaults, ``random_state=seed`` and the options of ``variant``
    (``"early-stop"``: none; ``"+refit"``: ``refit=True``; ``"+robust"``: ``target_scaling="robust"``;
    ``"+unscaled"``: ``variance_scaling=False``; ``"+wide"``: ``hidden=WIDE``)."""
    from hidlr.uq import models as M

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    member = {
        "refit": variant.endswith("refit"),
        "target_scaling": "robust" if variant.endswith("robust") else "standard",
        "variance_scaling": not variant.endswith("unscaled"),
        **({"hidden": WIDE} if variant.endswith("wide") else {}),
    }
    opts = {**member, "random_state": seed}
    makers: dict[str, Callable[[], Any]] = {
        "mdn": lambda: M.MDN(**opts),
        "bnn": lambda: M.BNN(**opts),
        "mc_dropout": lambda: M.MCDropout(**opts),
        "deep_ensemble": lambda: M.DeepEnsemble(
            M.MDN(components=1, **member), random_state=seed, variance_scaling=member["variance_scaling"]
        ),
        "mdn_ensemble": lambda: M.MDNEnsemble(**opts),
        "bayesian_mdn": lambda: M.BayesianMDN(**opts),
    }
    if name not in makers:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return makers[name]()


def load(
    name: str, splits: Sequence[int], root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """``X (n, d)``, ``y (n,)`` and ``(train_idx, test_idx)`` for each requested split."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        out = []
        for s in splits:
            perm = np.random.default_rng(s).permutation(len(y))
            cut = round(0.75 * len(y))
            out.append((perm[:cut], perm[cut:]))
        return X, y, out
    from hidlr.uq.data.uci import load_uci

    ds = load_uci(name, root)
    every = ds.split_indices(20)
    return ds.X, ds.y, [every[s] for s in splits]


def score(dist: Any, y: np.ndarray) -> dict[str, float]:
    """Test log-likelihood, RMSE, 90% coverage and width of a predictive mixture (original units)."""
    import torch

    from hidlr.uq import metrics

    yt = torch.as_tensor(y, dtype=dist.loc.dtype)
    return {
        "ll": -float(metrics.nll(dist, yt)),
        "rmse": float(metrics.rmse(dist, yt)),
        "cov90": float(metrics.coverage(dist, yt, 0.9)),
        "width90": float(metrics.interval_width(dist, 0.9)),
    }


def fit_one(
    model: str, variant: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, split: int
) -> dict[str, Any]:
    """Fit one default model on the training rows and score it on the test rows."""
    import warnings

    c0 = time.process_time()
    rec: dict[str, Any] = {"model": model, "variant": variant, "split": split}
    try:
        est = default_model(model, variant, split)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X[train], y[train])
        rec["warnings"] = sorted({str(w.message)[:200] for w in caught})
        rec.update(score(est.predict_proba(X[test]), y[test]))
        members = getattr(est, "estimators_", [est])
        rec["best_epoch"] = float(np.mean([m.best_epoch_ for m in members]))
        rec["spread"] = float(getattr(est, "spread_", 1.0))
        rows = members[0].validation_rows_  # side-by-side ensembles: the members' shared rows
        if rows is not None:  # the carved rows (seeded by the split, so the same for every model)
            rec["val_ll"] = float(est.score(X[train][rows], y[train][rows]))
    except (FloatingPointError, RuntimeError, ValueError) as err:
        rec["error"] = f"{type(err).__name__}: {err}"
    rec["cpu_s"] = time.process_time() - c0
    return rec


def tuned_records(path: Path = TUNED_RESULTS) -> dict[tuple[str, str, int], dict[str, float]]:
    """(set, model, split) -> metrics of the tuned protocol with the model's default optimizer."""
    if not path.exists():
        return {}
    out = {}
    for r in json.loads(path.read_text())["records"]:
        if r.get("metrics") and r["optimizer"] == DEFAULT_OPTIMIZER.get(r["model"]):
            out[(r["set"], r["model"], r["split"])] = r["metrics"]
    return out


def summarize(
    records: Sequence[dict[str, Any]], tuned: dict[tuple[str, str, int], dict[str, float]]
) -> list[dict[str, Any]]:
    """One row per (set, model, variant): mean ± s.e. over splits, and LL minus the tuned LL (paired)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["set"], r["model"], r["variant"]), []).append(r)
    rows = []
    for (s, m, v), rs in groups.items():
        ok = [r for r in rs if "ll" in r]
        row: dict[str, Any] = {"set": s, "model": m, "variant": v, "splits": len(ok), "failed": len(rs) - len(ok)}
        for k in ("ll", "rmse", "cov90", "width90", "cpu_s", "best_epoch"):
            row[k] = rep.mean_se([r[k] for r in ok]) if ok else None
        diffs = [r["ll"] - tuned[(s, m, r["split"])]["ll"] for r in ok if (s, m, r["split"]) in tuned]
        row["ll_minus_tuned"] = rep.mean_se(diffs) if diffs else None
        cov = [tuned[(s, m, r["split"])]["cov90"] for r in ok if (s, m, r["split"]) in tuned]
        row["tuned_cov90"] = rep.mean_se(cov) if cov else None
        rows.append(row)
    return rows


def chosen_by_validation(records: Sequence[dict[str, Any]], variant: str = "early-stop") -> dict[str, Any]:
    """Per set: on each split, the model of ``variant`` with the highest validation log-likelihood
    (on the carved rows, the same for every model of a split), and the mean of those models' test
    LL over the splits where every model has a validation figure, beside the best published
    figure (:data:`~hidlr.bench.uci.published.BEST_PUBLISHED_NLL`). On a set with an integer target
    (:data:`~hidlr.bench.uci.report.DISCRETE_TARGET_SETS`) a mixture's LL is a mass on the integers,
    not comparable with the published densities: ``discrete_target`` is set and nothing is beaten."""
    from hidlr.bench.uci.published import BEST_PUBLISHED_NLL
    from hidlr.bench.uci.report import DISCRETE_TARGET_SETS

    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        if r["variant"] == variant:
            by.setdefault((r["set"], r["split"]), []).append(r)
    out: dict[str, Any] = {}
    for (s, split), rs in sorted(by.items()):
        if any("val_ll" not in r for r in rs):
            continue
        best = max(rs, key=lambda r: r["val_ll"])
        entry = out.setdefault(s, {"splits": [], "models": [], "test_ll": []})
        entry["splits"].append(split)
        entry["models"].append(best["model"])
        entry["test_ll"].append(best["ll"])
    for s, entry in out.items():
        entry["ll"] = rep.mean_se(entry["test_ll"])
        entry["discrete_target"] = s in DISCRETE_TARGET_SETS
        if s in BEST_PUBLISHED_NLL:
            nll, holder = BEST_PUBLISHED_NLL[s]
            entry["best_published_ll"], entry["holder"] = -nll, holder
            if not entry["discrete_target"]:
                entry["beats_published"] = entry["ll"]["mean"] > -nll
    return out


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    """``defaults.json`` and ``defaults.md`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    harness.write_json(out_dir / "defaults.json", result)
    meta = result["meta"]
    order = {name: i for i, name in enumerate((*SETS, *MODELS, *VARIANTS))}
    summary = sorted(
        result["summary"],
        key=lambda r: (order.get(r["set"], 99), order.get(r["model"], 99), order.get(r["variant"], 99)),
    )
    rows = [
        [
            r["set"],
            r["model"],
            r["variant"],
            f"{r['splits']}/{r['splits'] + r['failed']}",
            rep.fmt_mean_se(r["ll"], 3),
            rep.fmt_mean_se(r["ll_minus_tuned"], 3),
            rep.fmt_mean_se(r["cov90"], 3),
            rep.fmt_mean_se(r["tuned_cov90"], 3),
            rep.fmt_mean_se(r["rmse"], 3),
            rep.fmt_mean_se(r["best_epoch"], 0),
            rep.fmt_mean_se(r["cpu_s"], 0),
        ]
        for r in summary
    ]
    goal_cov = [r for r in result["summary"] if r["cov90"] is not None and r["variant"] == "early-stop"]
    inside = sum(0.85 <= r["cov90"]["mean"] <= 0.95 for r in goal_cov)
    close = [r for r in result["summary"] if r["ll_minus_tuned"] is not None and r["variant"] == "early-stop"]
    near = sum(r["ll_minus_tuned"]["mean"] >= -0.1 for r in close)
    lines = [
        "# Default fits, no tuning",
        "",
        (
            "Each model with its defaults (`Model(random_state=split).fit(X_train, y_train)`; the refit variant "
            "adds `refit=True`, the robust one `target_scaling='robust'`, the unscaled one "
            "`variance_scaling=False`, the wide one `hidden=(100, 100)`): a validation part of 10% carved from "
            "the training rows, early stopping on "
            "its NLL (patience a fifth of the epoch cap), the best epoch's weights (an MDN, alone or as an "
            "ensemble's member, keeps its nets at the 5 epochs with the lowest NLL and predicts with their equal "
            "mixture), then the spread factor fitted "
            "by likelihood on the same rows (the ensembles also one for the whole mixture). Diabetes: "
            "scikit-learn's "
            "`load_diabetes`, random 75/25 splits (331 "
            "training rows) seeded by the split index; UCI sets: their standard splits. LL = mean test log "
            "predictive density in the target's units; `Δ LL vs tuned` = LL minus the tuned UCI protocol's LL "
            "(`results.json` in the folder above, the model's default optimizer), paired by split (positive: the "
            "default fit is better). CPU-seconds per fit measured on a shared machine."
        ),
        "",
        (
            f"Run: sets {result['sets']}, splits {result['splits']}, models {result['models']}, variants "
            f"{result['variants']}; commit {meta.get('git_commit') or 'unknown'}, torch {meta['torch']}, started "
            f"{meta['started']}; command `{result['command']}`."
        ),
        "",
        (
            f"Goals (the defaults, variant `early-stop`): 90% coverage in [0.85, 0.95] for **{inside} of "
            f"{len(goal_cov)}** (set, model) rows; LL within 0.1 nats of the tuned protocol (or better) for "
            f"**{near} of {len(close)}** rows with a tuned figure."
        ),
        "",
        rep.markdown_table(
            [
                "set",
                "model",
                "variant",
                "splits ok",
                "LL",
                "Δ LL vs tuned",
                "cov 90%",
                "tuned cov 90%",
                "RMSE",
                "best epoch",
                "CPU s / fit",
            ],
            rows,
        ),
        "",
    ]
    chosen = chosen_by_validation(result["records"])
    if chosen:
        lines += [
            "## Best default model chosen by validation",
            "",
            (
                "On each split, the default model (variant `early-stop`) with the highest log-likelihood on the "
                "carved validation rows (the same rows for every model: the split index seeds the carve); its test "
                "LL, averaged over the splits, beside the best published figure on the standard splits (WGBoost "
                "paper, Table 1; published figures average 20 splits)."
            ),
            "",
            rep.markdown_table(
                ["set", "splits", "chosen models", "test LL", "best published LL", "held by", "better"],
                [
                    [
                        s + (" (integer target)" if e.get("discrete_target") else ""),
                        len(e["splits"]),
                        ", ".join(f"{m} x{e['models'].count(m)}" for m in dict.fromkeys(e["models"])),
                        rep.fmt_mean_se(e["ll"], 3),
                        f"{e['best_published_ll']:.2f}" if "best_published_ll" in e else "—",
                        e.get("holder", "—"),
                        ("yes" if e["beats_published"] else "no")
                        if "beats_published" in e
                        else ("not comparable" if e.get("discrete_target") else "—"),
                    ]
                    for s, e in chosen.items()
                ],
            ),
            "",
        ]
    fails = [r for r in result["records"] if "error" in r]
    if fails:
        lines += (
            ["Failed fits:", ""]
            + [f"- {r['set']} split {r['split']} {r['model']} ({r['variant']}): {r['error'][:160]}" for r in fails]
            + [""]
        )
    warned = sorted({(r["set"], w) for r in result["records"] for w in r.get("warnings", [])})
    if warned:
        lines += ["Warnings raised by the fits:", ""] + [f"- {s}: {w}" for s, w in warned[:20]] + [""]
    (out_dir / "defaults.md").write_text("\n".join(lines) + "\n")


def run(
    out_dir: str | Path = "benchmarks/results/uci",
    sets: Sequence[str] = SETS,
    models: Sequence[str] = MODELS,
    splits: int | Sequence[int] = 3,
    variants: Sequence[str] = VARIANTS,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Fit and score every (set, split, model, variant); write ``defaults.json`` and ``defaults.md``."""
    import torch

    torch.set_num_threads(1)
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {VARIANTS}")
    split_ids = list(range(splits)) if isinstance(splits, int) else [int(s) for s in splits]
    records: list[dict[str, Any]] = []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "defaults.partial.jsonl"  # one line per finished fit: a stopped run keeps its work
    partial.write_text("")
    t0 = time.perf_counter()
    jobs = len(sets) * len(split_ids) * len(models) * len(variants)
    with harness.progress("default fits", jobs, enabled=progress) as tick:
        for s in sets:
            X, y, idx = load(s, split_ids)
            for split, (train, test) in zip(split_ids, idx):
                for m in models:
                    for v in variants:
                        rec = fit_one(m, v, X, y, train, test, split)
                        rec["set"] = s
                        records.append(rec)
                        with partial.open("a") as f:
                            f.write(json.dumps(rec, default=float) + "\n")
                        tick(f"{s} split {split} {m} {v}")
    result = {
        "meta": harness.run_metadata(seeds="random_state = split index"),
        "sets": list(sets),
        "models": list(models),
        "splits": split_ids,
        "variants": list(variants),
        "command": command,
        "wall_seconds": time.perf_counter() - t0,
        "records": records,
        "summary": summarize(records, tuned_records()),
        "chosen_by_validation": chosen_by_validation(records),
    }
    write_report(result, Path(out_dir))
    return result


def finish(
    out_dir: str | Path, partials: Sequence[str | Path], commands: Sequence[str], note: str = ""
) -> dict[str, Any]:
    """Write the report from the finished fits in one or more ``defaults.partial.jsonl`` files
    (runs stopped early, or runs of different variants put together); ``commands``: what made them."""
    records = [json.loads(line) for p in partials for line in Path(p).read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"no finished fits in {list(partials)}")
    result = {
        "meta": harness.run_metadata(seeds="random_state = split index"),
        "sets": list(dict.fromkeys(r["set"] for r in records)),
        "models": list(dict.fromkeys(r["model"] for r in records)),
        "splits": sorted({r["split"] for r in records}),
        "variants": list(dict.fromkeys(r["variant"] for r in records)),
        "command": "; ".join(commands) + (f" ({note})" if note else ""),
        "wall_seconds": math.nan,
        "records": records,
        "summary": summarize(records, tuned_records()),
        "chosen_by_validation": chosen_by_validation(records),
    }
    write_report(result, Path(out_dir))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/uci")
    p.add_argument("--sets", nargs="+", default=list(SETS))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    a = p.parse_args(argv)
    cmd = "python -m hidlr.bench.uci.defaults " + " ".join(sys.argv[1:] if argv is None else argv)
    res = run(a.out, a.sets, a.models, a.splits, a.variants, command=cmd)
    print((Path(a.out) / "defaults.md").read_text()[:4000])
    if not math.isfinite(res["wall_seconds"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
