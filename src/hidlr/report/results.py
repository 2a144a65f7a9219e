"""A report page from any benchmark's results folder (``hidlr report RESULTS_DIR``).

The page shows the folder's Markdown report (its images inlined), every PNG the report does not
already show, the run's provenance (command-independent: start, commit, machine, duration) and
the key tables of its JSON results, chosen per benchmark (lr, uci, kl, overhead, uq-speed,
finetune, rotdigits, faults, cuda; any other folder gets its ``summary`` table when it has one).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hidlr.report.markdown import split_title
from hidlr.report.page import Page

#: benchmark kind -> (table title, path of keys into the results JSON, columns to show or None for all)
KEY_TABLES: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...] | None]]] = {
    "lr": [
        ("Median rank among single-run methods", ("summary", "median_rank_single"), None),
        ("Median rank including the tuned grid", ("summary", "median_rank_with_tuned"), None),
    ],
    "uci": [
        (
            "Test scores per set, model and optimizer (mean ± s.e. over splits)",
            ("summary",),
            ("ll", "rmse", "crps", "cov90", "calibration_error", "failed"),
        ),
        ("Hi-DLR minus Adam, test log likelihood, paired by split", ("hidlr_minus_adam_ll",), None),
    ],
    "kl": [
        ("Slopes of log KL against log n", ("slopes",), ("pooled_slope", "per_seed", "boot_ci95", "clipped")),
        ("Gap experiment", ("gap_summary",), None),
    ],
    "overhead": [
        (
            "Time per step against Adam, by number of groups",
            ("per_groups",),
            (
                "same_rates_ratio_all_steps",
                "same_rates_ratio_non_refresh_steps",
                "ratio_all_steps",
                "ratio_non_refresh_steps",
                "cpu_ratio_non_refresh_steps",
                "refreshes",
                "probe_forwards",
            ),
        ),
        (
            "Extra memory, in parameter copies beyond Adam",
            ("memory",),
            ("extra_param_copies", "extra_peak_param_copies"),
        ),
        ("Goals", ("goals",), None),
    ],
    "uq_speed": [("Throughput ratios", ("ratios",), None), ("Paired ratios", ("paired_ratios",), ("median",))],
    "finetune": [("Summary", ("summary",), None)],
    "rotdigits": [
        (
            "Fits per model and seed",
            ("jobs",),
            ("n_train", "best_epochs", "epistemic_ratio", "mode_split", "phantom_mass", "fit_s"),
        )
    ],
    "faults": [("Cases by outcome", ("counts",), None)],
    "cuda": [("Checks", ("checks",), ("ok", "seconds", "error"))],
    "other": [("Summary", ("summary",), None)],
}

MAX_ROWS = 80


def detect_kind(results: dict[str, Any], folder: Path) -> str:
    """Which benchmark wrote ``results`` (a results JSON) in ``folder``."""
    if results.get("benchmark") in KEY_TABLES:
        return str(results["benchmark"])
    if "per_groups" in results and "memory" in results:
        return "overhead"
    if "paired_ratios" in results:
        return "uq_speed"
    if "slopes" in results and "jobs" in results:
        return "kl"
    if "records" in results and "sets" in results and "summary" in results:
        return "uci"
    if "task" in results and "densities" in results and "jobs" in results:
        return "rotdigits"
    if "counts" in results and "cases" in results:
        return "faults"
    if "checks" in results and "environment" in results:
        return "cuda"
    if "finetune" in folder.name.lower():
        return "finetune"
    return "other"


def _results_file(folder: Path) -> Path | None:
    for name in ("results.json", "overhead.json"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.json"))
    return found[0] if found else None


def fmt_value(v: Any) -> str:
    """A table cell: mean ± s.e. for ``{"mean", "se"}`` (the s.e. to 2 significant digits, the mean
    to the same decimals), 4 significant digits for other floats, short lists inline, '—' for
    None/NaN."""
    if isinstance(v, dict) and "mean" in v and "se" in v:
        m, s = v["mean"], v["se"]
        if s is None or (isinstance(s, float) and not math.isfinite(s)) or m is None:
            return fmt_value(m)
        if s <= 0:
            return f"{fmt_value(m)} ± 0"
        decimals = min(8, max(0, 1 - math.floor(math.log10(s))))
        return f"{m:.{decimals}f} ± {s:.{decimals}f}"
    if isinstance(v, dict) and set(v) <= {"median", "n"} and "median" in v:
        return fmt_value(v["median"]) + (f" (n={v['n']})" if "n" in v else "")
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    return str(v)


def _is_leaf(v: Any) -> bool:
    return not isinstance(v, dict) or ("mean" in v and "se" in v) or (set(v) <= {"median", "n"} and "median" in v)


def flatten(obj: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """``(key path, leaf)`` pairs of a nested dict; long lists (more than 4 items) are left out."""
    if _is_leaf(obj):
        if isinstance(obj, list) and len(obj) > 4:
            return []
        return [(path, obj)]
    out = []
    for k, v in obj.items():
        out += flatten(v, (*path, str(k)))
    return out


def pivot(obj: Any, columns: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """A nested dict as a table: the leading keys as row labels, the last key as columns.

    ``{"a": {"x": 1, "y": 2}}`` -> header ``["", "x", "y"]``, rows ``[["a", "1", "2"]]``.
    Leaves at different depths share the table: shorter paths leave their first cells empty.
    ``columns``: the last keys to show, in this order (default: all, in order of appearance).
    """
    pairs = flatten(obj) if obj is not None else []
    if not pairs:
        return [], []
    depth = max(len(p) for p, _ in pairs)
    if depth <= 1:
        return ["key", "value"], [[p[0] if p else "", fmt_value(v)] for p, v in pairs]
    keep, columns = columns, []
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for p, v in pairs:
        p = ("",) * (depth - len(p)) + p
        col = p[-1]
        if col not in columns:
            columns.append(col)
        rows.setdefault(p[:-1], {})[col] = fmt_value(v)
    if keep is not None:
        columns = [c for c in keep if c in columns]
    header = [""] * (depth - 1) + columns
    return header, [[*label, *(cells.get(c, "") for c in columns)] for label, cells in rows.items()]


def _dig(obj: Any, path: Sequence[str]) -> Any:
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return _keyed(obj)


#: fields that name a record of a list of records, in the order they make its row label
LABEL_FIELDS = ("name", "set", "model", "optimizer", "seed", "split")


def _keyed(obj: Any) -> Any:
    """A list of records (dicts) as a dict keyed by each record's naming fields (``LABEL_FIELDS``,
    else its index), holding its scalar fields only, so that :func:`pivot` makes one row per record
    (nested dicts and lists stay in the JSON); anything else as it is."""
    if not isinstance(obj, list) or not obj or not all(isinstance(r, dict) for r in obj):
        return obj
    out: dict[str, Any] = {}
    for i, r in enumerate(obj):
        label = " ".join(str(r[f]) for f in LABEL_FIELDS if f in r) or str(i)
        scalars = {k: v for k, v in r.items() if k not in LABEL_FIELDS and not isinstance(v, (dict, list))}
        out[label if label not in out else f"{label} ({i})"] = scalars
    return out


def provenance(results: dict[str, Any]) -> list[list[str]]:
    """Rows (what, value) for when, where and from which commit a result was made."""
    meta = results.get("meta") or results.get("environment") or results.get("machine") or {}
    rows = []
    for label, v in (
        ("started", results.get("started") or meta.get("started")),
        ("code at commit", meta.get("git_commit") or meta.get("commit") or results.get("commit")),
        ("machine", meta.get("cpu") or meta.get("machine") or meta.get("platform")),
        ("CPUs", meta.get("cpu_count") or meta.get("cores")),
        ("torch", meta.get("torch") or (meta.get("packages") or {}).get("torch")),
        ("wall clock (s)", results.get("wall_seconds") or results.get("duration_s")),
        ("quick (smoke) run", results.get("quick")),
    ):
        if v is not None:
            rows.append([label, fmt_value(v)])
    return rows


def _referenced_images(markdown: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", markdown))


def build_results_page(folder: str | Path) -> Page:
    """The report page for a benchmark's results folder (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    md_path = next((folder / n for n in ("report.md", "overhead.md") if (folder / n).is_file()), None)
    json_path = _results_file(folder)
    pngs = sorted(folder.glob("*.png"))
    if md_path is None and json_path is None and not pngs:
        raise FileNotFoundError(f"{folder} holds no report.md, results JSON or PNG plots")
    results = json.loads(json_path.read_text()) if json_path is not None else {}
    kind = detect_kind(results, folder) if isinstance(results, dict) else "other"
    md = md_path.read_text(encoding="utf-8") if md_path is not None else ""
    title, body = split_title(md)
    page = Page(
        title or f"Results: {folder.name}",
        f"{kind} benchmark · {folder.resolve()}",
        footer=f"Built by `hidlr report {folder}` from the files in that folder.",
    )
    if body.strip():
        page.section("Report", "report").markdown(body, images=folder)
    shown = _referenced_images(md)
    extra = [p for p in pngs if p.name not in shown]
    if extra:
        sec = page.section("Figures", "figures")
        for p in extra:
            sec.figure(p, p.name)
    if isinstance(results, dict) and results:
        sec = page.section("Key tables", "tables")
        prov = provenance(results)
        if prov:
            sec.heading("Provenance").table(["", "value"], prov)
        for caption, path, cols in KEY_TABLES[kind]:
            header, rows = pivot(_dig(results, path), cols)
            if not rows:
                continue
            sec.heading(caption)
            if len(rows) > MAX_ROWS:
                sec.paragraph(f"First {MAX_ROWS} of {len(rows)} rows; all are in {json_path.name}.", "note")
            sec.table(header, rows[:MAX_ROWS])
        sec.paragraph(f"Every number is in {json_path.name} beside the report.", "note")
    return page
