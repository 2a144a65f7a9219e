"""The ``hidlr`` command: parses arguments, calls the library, prints. No logic lives here."""

from __future__ import annotations

import typer

app = typer.Typer(help="Hessian-informed differential learning rates, and uncertainty-aware regression.",
                  no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Benchmarks (separate from the tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.command()
def demo(steps: int = typer.Option(300, help="Training steps per optimizer."),
         seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Train a small model on built-in data with Hi-DLR and with plain Adam, side by side."""
    from hidlr.demo import run_demo

    run_demo(steps=steps, seed=seed)


if __name__ == "__main__":
    app()
