"""`hidlr demo`: Hi-DLR against Adam from several starting rates on scikit-learn's digits, and an
MDN and a BNN on a two-mode regression task with a known density; prints a summary and writes
one self-contained HTML page.

:func:`run_demo` runs it all; :mod:`hidlr.demo.rates` and :mod:`hidlr.demo.uncertainty` hold the
two experiments, :mod:`hidlr.demo.plots` the figures, :mod:`hidlr.demo.page` the page.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hidlr.demo.rates import RunResult, explain_step_zero, load_digits_split, make_mlp, run_rates, train_digits
from hidlr.demo.uncertainty import UncertaintyDemo, run_uncertainty

__all__ = ["DemoResult", "RunResult", "load_digits_split", "make_mlp", "run_demo", "train_digits"]

DEFAULT_OUT = Path("results/demo/demo.html")


@dataclass
class DemoResult:
    """What the demo measured and where its page is."""

    runs: list[RunResult]
    uncertainty: UncertaintyDemo
    takeaway: str
    page: Path | None
    seconds: float


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def run_demo(
    steps: int = 300,
    seed: int = 0,
    lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-2),
    n: int = 1000,
    epochs: int = 60,
    out: str | Path | None = DEFAULT_OUT,
    console: Console | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run both parts, print the summary and the takeaway, write the page to ``out`` (None: no page).

    ``steps``: training steps per digits run; ``lrs``: Adam's starting rates (each run once with
    and once without Hi-DLR); ``n``, ``epochs``: the MDN's and BNN's training set and epochs.
    """
    from hidlr.bench import harness
    from hidlr.demo.page import RUN_HEADER, UQ_HEADER, build_page, run_rows, takeaway, uq_rows

    if not lrs or any(lr <= 0 for lr in lrs):
        raise ValueError(f"lrs must be positive starting rates, got {lrs}")
    console = console or Console()
    t0 = time.perf_counter()
    meta = harness.run_metadata(seeds=[seed])
    console.print(
        f"[bold]hidlr demo[/]: Hi-DLR(Adam) against Adam from lr0 in {list(lrs)} (MLP on digits, "
        f"{steps} steps), then an MDN and a BNN on a two-mode task ({n} points, {epochs} epochs)"
    )
    with harness.progress("demo", 2 * len(lrs) + 2, enabled=progress and not console.quiet) as tick:
        runs = run_rates(lrs, steps, seed, tick=tick)
        unc = run_uncertainty(n=n, epochs=epochs, seed=seed, tick=tick)
    console.print(
        _table("Digits MLP: final validation loss and accuracy (same data, seed and steps)", RUN_HEADER, run_rows(runs))
    )
    console.print(
        _table(
            "Two-mode regression, 2000 test points (NLL, CRPS: lower is better; coverage: 0.9 is calibrated)",
            UQ_HEADER,
            uq_rows(unc),
        )
    )
    hidlr_runs = [r for r in runs if r.first_refresh is not None]  # the one nearest lr0 = 1e-3 explains step 0
    first = min(hidlr_runs, key=lambda r: abs(math.log10(r.lr0) + 3), default=None)
    step_zero = explain_step_zero(first) if first is not None else ""
    if step_zero:
        console.print("\n[bold]Why step 0 already shows a rate other than lr0[/]")
        console.print(step_zero, highlight=False)
    line = takeaway(runs, unc)
    console.print(f"\n[bold]Takeaway:[/] {line}", highlight=False)
    path = None
    seconds = time.perf_counter() - t0
    if out is not None:
        settings = {"steps": steps, "seed": seed, "n": n, "epochs": epochs}
        path = build_page(runs, unc, step_zero, settings, meta, seconds).write(out)
        console.print(f"\nReport page (self-contained HTML, opens offline): [bold]{path}[/]", highlight=False)
    return DemoResult(runs, unc, line, path, seconds)
