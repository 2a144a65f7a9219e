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
def bench_overhead(out: Path = typer.Option(Path("benchmarks/results/overhead"), help="Output folder."),
                   repeats: int = typer.Option(3, help="Repeats (medians are over these)."),
                   steps: int = typer.Option(1000, help="Steps per run, from the start of training."),
                   groups: str = typer.Option("1,4,16,64", help="Numbers of param groups K, comma-separated."),
                   memory: bool = typer.Option(True, help="Also measure peak memory (fresh processes)."),
                   device: str = typer.Option(None, help="cpu or cuda (default: cuda if available)."),
                   threads: int = typer.Option(1, help="torch threads.")) -> None:
    """Per-step time (all steps and non-refresh steps) and peak memory of HiDLR(Adam) against Adam
    on a 32-layer MLP, for several numbers of groups, side by side in one process."""
    from hidlr.bench.overhead import run

    ks = tuple(int(k) for k in groups.split(","))
    run(out, repeats=repeats, steps=steps, groups=ks, device=device, threads=threads, memory=memory)
    typer.echo((out / "report.md").read_text())


@bench_app.command("uq-speed")
def bench_uq_speed(out: Path = typer.Option(Path("results/uq-speed"), help="Output folder."),
                   repeats: int = typer.Option(5, help="Repeats (medians and per-repeat ratios)."),
                   quick: bool = typer.Option(False, help="Small settings for a smoke run.")) -> None:
    """BNN training throughput against bayesian-torch and Pyro; time to score 1e6 points."""
    from hidlr.bench.uq_speed import run

    run(out, repeats=repeats, quick=quick, progress=True)
    typer.echo((out / "report.md").read_text())


@bench_app.command("lr")
def bench_lr(out: Path = typer.Option(Path("results/lr"), help="Output folder."),
             quick: bool = typer.Option(False, help="Short budgets, one seed, a method subset (< 5 min)."),
             seeds: int = typer.Option(None, help="Seeds (default 3; quick 1)."),
             workloads: list[str] = typer.Option(None, help="Workload names (default: all)."),
             methods: list[str] = typer.Option(None, help="Method names (default: all)."),
             progress: bool = typer.Option(True, help="Show a progress bar.")) -> None:
    """Hi-DLR against tuned sweeps and learning-rate-free optimizers on ten workloads."""
    from hidlr.bench.lr import run

    run(out, quick=quick, seeds=seeds, workloads=workloads or None, methods=methods or None,
        progress=progress)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("uci")
def bench_uci(out: Path = typer.Option(Path("results/uci"), help="Output folder."),
              quick: bool = typer.Option(False, help="Few splits and epochs (smoke run)."),
              sets: list[str] = typer.Option(None, help="Set names or folders (default: the five)."),
              models: list[str] = typer.Option(None, help="mdn, bnn, mc_dropout, deep_ensemble, "
                                               "mdn_ensemble, bayesian_mdn (default: all)."),
              splits: int = typer.Option(None, help="First k of the 20 standard splits."),
              optimizers: list[str] = typer.Option(None, help="hidlr, adam (default: both)."),
              root: Path = typer.Option(None, help="UCI data folder (default: found automatically)."),
              workers: int = typer.Option(2, help="Processes side by side.")) -> None:
    """The UCI regression protocol: 20 splits, six models, Hi-DLR and tuned Adam."""
    from hidlr.bench import uci

    uci.run(out, quick=quick, sets=sets or None, models=models or None, splits=splits,
            optimizers=optimizers or None, root=root, progress=True, workers=workers)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("kl")
def bench_kl(out: Path = typer.Option(Path("results/kl"), help="Output folder."),
             quick: bool = typer.Option(False, help="Small sizes and seeds (smoke run)."),
             tasks: list[str] = typer.Option(None, help="Synthetic tasks (default: bimodal, "
                                             "heteroscedastic, bishop)."),
             seeds: int = typer.Option(None, help="Seeds per size (default 5)."),
             workers: int = typer.Option(2, help="Processes side by side.")) -> None:
    """KL to the true conditional density against n, slopes, coverage, and the gap experiment."""
    from hidlr.bench import kl

    kl.run(out, quick=quick, tasks=tasks or None, seeds=seeds, progress=True, workers=workers)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("gap")
def bench_gap(out: Path = typer.Option(Path("results/kl/gap_long_training.json"), help="Output JSON file."),
              models: list[str] = typer.Option(None, help="Models (default: bnn, bayesian_mdn)."),
              epochs: int = typer.Option(2000, help="Training epochs (the KL study's gap runs use 400)."),
              seeds: int = typer.Option(5, help="Seeds."),
              workers: int = typer.Option(2, help="Processes side by side.")) -> None:
    """The limited-data gap experiment alone, with longer training (a robustness check)."""
    from hidlr.bench import kl

    res = kl.gap_check(out, models=models or ("bnn", "bayesian_mdn"), epochs=epochs, seeds=seeds, workers=workers)
    for m, st in res["summary"].items():
        ratio = "—" if st is None else f"{st['mean']:.2f} ± {st['se']:.2f}"
        typer.echo(f"{m}: epistemic variance gap / near = {ratio}")
    typer.echo(f"written: {out}")


if __name__ == "__main__":
    app()
