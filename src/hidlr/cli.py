"""The ``hidlr`` command: parses arguments, calls the library, prints. No logic lives here."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Hessian-informed differential learning rates, and uncertainty-aware regression.",
                  no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Benchmarks (separate from the tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.command()
def demo(steps: int = typer.Option(300, help="Training steps per optimizer."),
         seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Train a small model on built-in data with Hi-DLR and with plain Adam, side by side."""
    import torch

    from hidlr.demo import run_demo

    torch.set_num_threads(1)  # small models: threads cost more than they give
    run_demo(steps=steps, seed=seed)


@bench_app.command("overhead")
def bench_overhead(out: Path = typer.Option(Path("results/overhead"), help="Output folder."),
                   repeats: int = typer.Option(5, help="Repeats (medians are over these)."),
                   steps: int = typer.Option(200, help="Steps per run."),
                   device: str = typer.Option(None, help="cpu or cuda (default: cuda if available)."),
                   threads: int = typer.Option(None, help="torch threads (default: torch's).")) -> None:
    """Per-step time and peak memory of HiDLR(Adam) against Adam on a ~1M-parameter MLP."""
    from hidlr.bench.overhead import run

    run(out, repeats=repeats, steps=steps, device=device, threads=threads)
    typer.echo((out / "overhead.md").read_text())


@bench_app.command("uq-speed")
def bench_uq_speed(out: Path = typer.Option(Path("results/uq-speed"), help="Output folder."),
                   repeats: int = typer.Option(5, help="Repeats (medians and per-repeat ratios)."),
                   quick: bool = typer.Option(False, help="Small settings for a smoke run.")) -> None:
    """BNN training throughput against bayesian-torch and Pyro; time to score 1e6 points."""
    from hidlr.bench.uq_speed import run

    run(out, repeats=repeats, quick=quick, progress=True)
    typer.echo((out / "report.md").read_text())


if __name__ == "__main__":
    app()
