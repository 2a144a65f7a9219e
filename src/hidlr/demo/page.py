"""The demo's summary tables, one-line takeaway and HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hidlr.demo import plots
from hidlr.demo.rates import RunResult
from hidlr.demo.uncertainty import UncertaintyDemo
from hidlr.report import Page

RUN_HEADER = [
    "run",
    "final val loss",
    "val accuracy",
    "final rate per layer (Hi-DLR: chosen, before its end-of-run anneal)",
    "seconds",
]
UQ_HEADER = ["model", "NLL", "CRPS", "90% coverage", "90% width", "calibration error", "KL to truth (nats)", "seconds"]


def run_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    """Rows of :data:`RUN_HEADER`."""
    return [
        [
            r.name,
            f"{r.val_loss:.4f}",
            f"{r.val_acc:.3f}",
            ", ".join(f"{v:.2e}" for v in (r.chosen or r.rates[-1][1])),
            f"{r.seconds:.1f}",
        ]
        for r in runs
    ]


def uq_rows(u: UncertaintyDemo) -> list[list[str]]:
    """Rows of :data:`UQ_HEADER`."""
    return [
        [
            m.name,
            f"{m.scores['nll']:.3f}",
            f"{m.scores['crps']:.3f}",
            f"{m.scores['coverage90']:.3f}",
            f"{m.scores['width90']:.3f}",
            f"{m.scores['calibration_error']:.3f}",
            f"{m.scores['kl_to_truth']:.3f}",
            f"{m.seconds:.1f}",
        ]
        for m in u.models
    ]


def takeaway(runs: Sequence[RunResult], u: UncertaintyDemo) -> str:
    """One sentence from the measured numbers: how much the final loss depends on the starting rate
    with and without Hi-DLR, and which model is closer to the true density."""

    def spread(opt: str) -> tuple[float, float]:
        losses = [r.val_loss for r in runs if r.optimizer == opt]
        return min(losses), max(losses)

    (a_lo, a_hi), (h_lo, h_hi) = spread("Adam"), spread("Hi-DLR(Adam)")
    lrs = sorted({r.lr0 for r in runs})
    steadier = "less" if h_hi - h_lo < a_hi - a_lo else "not less"
    kl = {m.name: m.scores["kl_to_truth"] for m in u.models}
    best = min(kl, key=kl.get)
    other = max(kl, key=kl.get)
    return (
        f"From starting rates {lrs[0]:g} to {lrs[-1]:g}, Hi-DLR(Adam) ended at validation loss "
        f"{h_lo:.3f}-{h_hi:.3f} against Adam's {a_lo:.3f}-{a_hi:.3f} ({steadier} sensitive to the starting "
        f"rate); on the two-mode task the {best} is closer to the true density than the {other} "
        f"(KL {kl[best]:.3f} vs {kl[other]:.3f} nats)."
    )


def build_page(
    runs: Sequence[RunResult],
    u: UncertaintyDemo,
    step_zero: str,
    settings: dict[str, Any],
    meta: dict[str, Any],
    seconds: float,
) -> Page:
    """The demo's page: summary, the optimizer figures, the uncertainty figures, provenance."""
    page = Page(
        "hidlr demo",
        "Hi-DLR against Adam from several starting rates; an MDN and a BNN on a "
        "two-mode regression task with a known true density",
        footer=f"Made by `hidlr demo` in {seconds:.0f} s; commit {meta.get('git_commit') or 'unknown'}.",
    )
    s = page.section("Summary", "summary")
    s.paragraph(takeaway(runs, u), "takeaway")
    s.heading("Digits MLP: final scores after the same steps, data and seed")
    s.table(RUN_HEADER, run_rows(runs))
    s.heading(f"Two-mode regression (bimodal task, {u.n_train} training points), scored on 2000 test points")
    s.table(UQ_HEADER, uq_rows(u))
    s.paragraph(
        "NLL and CRPS: lower is better. Coverage: the fraction of test targets inside the central "
        "90% interval (0.9 is calibrated). KL to truth: how far the predictive density is from the "
        "task's exact conditional density.",
        "note",
    )

    s = page.section("Loss curves", "loss-curves")
    s.paragraph(
        f"An MLP (64-128-128-10) on scikit-learn's digits, {settings['steps']} steps of batches of 64, "
        "one Hi-DLR group per layer. Same initial weights and minibatches for every run."
    )
    s.figure(
        plots.loss_curves(runs),
        "Validation and training loss; colour: starting rate; solid: Hi-DLR(Adam), dashed: Adam.",
    )
    s = page.section("Learning rates over time", "rates")
    s.figure(
        plots.rates_over_time(runs),
        "The rate each layer applied at every step. Adam keeps lr0 (dotted); "
        "Hi-DLR re-chooses each layer's rate at every refresh (grey lines).",
    )
    s.heading("Why step 0 already shows a rate other than lr0")
    s.code(step_zero)

    s = page.section("Predictive densities", "densities")
    s.paragraph(
        "y = ±sin(3x) + noise with equal odds: two modes at every x. An MDN models p(y|x) as a "
        "mixture; a BNN with a Gaussian likelihood can only put one bump between the modes."
    )
    s.figure(plots.densities(u), "Predictive density against the true conditional density at four x.")
    s = page.section("Intervals", "intervals")
    s.figure(plots.intervals(u), "Predictive mean and central 90% interval over x, beyond the training inputs too.")
    s = page.section("Epistemic and aleatoric uncertainty", "epistemic")
    s.paragraph(
        "Aleatoric: noise the model believes is in the data (within one network). Epistemic: "
        "disagreement between the BNN's sampled networks, which should grow where there is no data. "
        "A single MDN has no epistemic part."
    )
    s.figure(plots.uncertainty_split(u), "Standard deviations of each part across x.")
    s = page.section("Calibration", "calibration")
    s.figure(
        plots.calibration(u),
        "Fraction of test targets below each predicted quantile; the diagonal is perfect calibration.",
    )

    s = page.section("How this was made", "provenance")
    s.table(
        ["", "value"],
        [
            ["command", "hidlr demo " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())],
            ["code at commit", str(meta.get("git_commit") or "unknown")],
            ["machine", f"{meta.get('cpu')} ({meta.get('cpu_count')} CPUs), {meta.get('platform')}"],
            ["software", f"Python {meta.get('python')}, torch {meta.get('torch')}, numpy {meta.get('numpy')}"],
            ["started", str(meta.get("started"))],
            ["wall clock", f"{seconds:.1f} s (one torch thread; times vary with machine load)"],
        ],
    )
    return page
