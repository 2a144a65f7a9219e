"""The ``hidlr`` command: parses arguments, calls the library, prints. No logic lives here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer


def _fraction(value: float) -> float:
    """A parameter budget: a fraction in (0, 1]."""
    if not 0.0 < value <= 1.0:
        raise typer.BadParameter(f"must be a fraction in (0, 1], got {value}")
    return value


def _output_file(path: Path | None) -> Path | None:
    """A file to write at the end of a run: refused up front if it is a folder or lies under a file."""
    if path is None:
        return None
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file path such as {path / 'page.html'}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise typer.BadParameter(f"{parent} is a file, so {path} cannot be written")
    return path


def _device(value: str | None) -> str | None:
    """A torch device name (None: the command's default), refused if torch cannot parse it or lacks CUDA."""
    if value is None:
        return None
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"{value!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"{value!r}: CUDA is not available here")
    return value


def _known(option: str, values: list[str] | None, choices: Sequence[str]) -> list[str] | None:
    """``values`` (None when not given), refused as a usage error naming ``option`` unless each is one
    of ``choices``: checked before a benchmark starts, not when it reaches the name."""
    unknown = [v for v in values or () if v not in choices]
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}", param_hint=[option]
        )
    return list(values) if values else None


app = typer.Typer(
    help="Hessian-informed differential learning rates, and uncertainty-aware regression.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (separate from the tests).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.command()
def demo(
    steps: int = typer.Option(300, min=1, help="Training steps per digits run."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    n: int = typer.Option(1000, min=10, help="Training points for the MDN and the BNN (at least 10)."),
    epochs: int = typer.Option(60, min=1, help="Epochs for the MDN and the BNN."),
    out: Path = typer.Option(
        Path("results/demo/demo.html"), callback=_output_file, help="Where to write the HTML page."
    ),
) -> None:
    """Hi-DLR against Adam from several starting rates, an MDN and a BNN on a two-mode task; writes
    one self-contained HTML page."""
    import torch

    from hidlr.demo import run_demo

    torch.set_num_threads(1)  # small models: threads cost more than they give
    run_demo(steps=steps, seed=seed, n=n, epochs=epochs, out=out)


@app.command()
def report(
    results: Path = typer.Argument(
        ...,
        exists=True,
        file_okay=False,
        help="A benchmark's results folder (lr, uci, kl, overhead, uq-speed, finetune, rotdigits, faults, cuda).",
    ),
    out: Path = typer.Option(None, callback=_output_file, help="The HTML file (default: RESULTS/report.html)."),
) -> None:
    """Build one self-contained HTML page from a benchmark's results folder."""
    from hidlr.report import build_results_page

    path = build_results_page(results).write(out or results / "report.html")
    typer.echo(f"report page: {path}")


@bench_app.command("overhead")
def bench_overhead(
    out: Path = typer.Option(Path("benchmarks/results/overhead"), help="Output folder."),
    repeats: int = typer.Option(3, min=1, help="Repeats (medians are over these)."),
    steps: int = typer.Option(1000, min=1, help="Steps per run, from the start of training."),
    groups: str = typer.Option("1,4,16,64", help="Numbers of param groups K, comma-separated."),
    memory: bool = typer.Option(True, help="Also measure peak memory (fresh processes)."),
    device: str = typer.Option(None, callback=_device, help="cpu or cuda (default: cuda if available)."),
    threads: int = typer.Option(1, min=1, help="torch threads."),
    rebuild: bool = typer.Option(False, help="Only rebuild OUT's report from its stored repeats (no timing)."),
) -> None:
    """Per-step time (all steps and non-refresh steps) and peak memory of HiDLR(Adam) against Adam
    on a 32-layer MLP, for several numbers of groups, side by side in one process."""
    from hidlr.bench.overhead import rebuild as rebuild_report
    from hidlr.bench.overhead import run
    from hidlr.bench.overhead.timing import DEPTH

    tensors = 2 * DEPTH  # the MLP's weights and biases, split into K groups of consecutive tensors
    try:
        ks = tuple(int(k) for k in groups.split(","))
    except ValueError:
        ks = ()
    if not ks or any(k < 1 or tensors % k for k in ks):
        raise typer.BadParameter(
            f"must be comma-separated numbers of groups that divide {tensors} (the MLP's tensors), got {groups!r}",
            param_hint=["--groups"],
        )
    if rebuild:
        if not (out / "overhead.json").is_file():
            raise typer.BadParameter(f"no overhead.json in {out} to rebuild from", param_hint="--out")
        rebuild_report(out)
    else:
        run(out, repeats=repeats, steps=steps, groups=ks, device=device, threads=threads, memory=memory)
    typer.echo((out / "report.md").read_text())


@bench_app.command("uq-speed")
def bench_uq_speed(
    out: Path = typer.Option(Path("results/uq-speed"), help="Output folder."),
    repeats: int = typer.Option(5, min=1, help="Repeats (medians and per-repeat ratios)."),
    quick: bool = typer.Option(False, help="Small settings for a smoke run."),
) -> None:
    """BNN training throughput against bayesian-torch and Pyro; time to score 1e6 points."""
    from hidlr.bench.uq_speed import run

    run(out, repeats=repeats, quick=quick, progress=True)
    typer.echo((out / "report.md").read_text())


@bench_app.command("lr")
def bench_lr(
    out: Path = typer.Option(Path("results/lr"), help="Output folder."),
    quick: bool = typer.Option(False, help="Short budgets, one seed, a method subset (< 5 min)."),
    seeds: int = typer.Option(None, min=1, help="Seeds (default 3; quick 1)."),
    workloads: list[str] = typer.Option(None, help="Workload names (default: all)."),
    methods: list[str] = typer.Option(
        None, help="Method names (default: all); <method>@lr0=<rate> starts Hi-DLR or GeN at another rate."
    ),
    lr0: list[float] = typer.Option(
        None, help="Also run every named Hi-DLR/GeN method from this start rate (repeatable)."
    ),
    first_seed: int = typer.Option(0, min=0, help="Seeds start here."),
    store: Path = typer.Option(
        None,
        help="A result store (e.g. benchmarks/results/lr): write the run "
        "into STORE/parts/PART and rebuild STORE's report from all its parts.",
    ),
    part: str = typer.Option(None, help="The part's folder name (with --store)."),
    rebuild: bool = typer.Option(False, help="Only rebuild --store's report from its parts."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Hi-DLR against tuned sweeps and learning-rate-free optimizers on small workloads."""
    from hidlr.bench import lr

    if rebuild or part is not None:
        if store is None:
            raise typer.BadParameter("--rebuild and --part need --store")
    if not rebuild:
        # names and rates are checked before any work, as usage errors
        for option, check in (
            ("--workloads", lambda: lr.workloads_mod.get(workloads or None)),
            ("--lr0", lambda: lr.methods_mod.check_start_rates(lr0 or [])),
            ("--methods", lambda: lr.methods_mod.get(methods or None, lr0 or None)),
        ):
            try:
                check()
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None
    if store is not None and rebuild:
        lr.rebuild(store)
        out = store
    elif store is not None:
        if not part:
            raise typer.BadParameter("--store needs --part (or --rebuild)")
        lr.run_into_store(
            store,
            part,
            quick=quick,
            seeds=seeds,
            workloads=workloads or None,
            methods=methods or None,
            lr0s=lr0 or None,
            first_seed=first_seed,
            progress=progress,
        )
        out = store
    else:
        lr.run(
            out,
            quick=quick,
            seeds=seeds,
            workloads=workloads or None,
            methods=methods or None,
            lr0s=lr0 or None,
            first_seed=first_seed,
            progress=progress,
        )
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("uci")
def bench_uci(
    out: Path = typer.Option(Path("results/uci"), help="Output folder."),
    quick: bool = typer.Option(False, help="Few splits and epochs (smoke run)."),
    sets: list[str] = typer.Option(None, help="Set names or folders (default: the five)."),
    models: list[str] = typer.Option(
        None,
        help="mdn, bnn, mc_dropout, deep_ensemble, mdn_ensemble, bayesian_mdn, mdn_ensemble_wide (two hidden "
        "layers of 100); given models run with every optimizer (default: the six with both, the wide MDN "
        "ensemble with hidlr only).",
    ),
    splits: int = typer.Option(None, min=1, help="First k of the 20 standard splits."),
    optimizers: list[str] = typer.Option(None, help="hidlr, adam (default: both)."),
    root: Path = typer.Option(None, help="UCI data folder (default: found automatically)."),
    workers: int = typer.Option(2, min=1, help="Processes side by side."),
    budget_steps: int = typer.Option(
        None,
        min=1,
        help="Optimizer steps at each model's epoch cap, for every model (default: 800, 1600 for sets of "
        "3000+ rows; the wide MDN ensemble 3000).",
    ),
) -> None:
    """The UCI regression protocol: 20 splits, six models with Hi-DLR and tuned Adam, and a wide MDN ensemble."""
    from hidlr.bench import uci

    uci.run(
        out,
        quick=quick,
        sets=sets or None,
        models=_known("--models", models, uci.MODELS),
        splits=splits,
        optimizers=_known("--optimizers", optimizers, uci.OPTIMIZERS),
        root=root,
        progress=True,
        workers=workers,
        budget_steps=budget_steps,
    )
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("kl")
def bench_kl(
    out: Path = typer.Option(Path("results/kl"), help="Output folder."),
    quick: bool = typer.Option(False, help="Small sizes and seeds (smoke run)."),
    tasks: list[str] = typer.Option(None, help="Synthetic tasks (default: bimodal, heteroscedastic, bishop)."),
    seeds: int = typer.Option(None, min=1, help="Seeds per size (default 5)."),
    workers: int = typer.Option(2, min=1, help="Processes side by side."),
) -> None:
    """KL to the true conditional density against n, slopes, coverage, and the gap experiment."""
    from hidlr.bench import kl

    kl.run(out, quick=quick, tasks=_known("--tasks", tasks, kl.TASKS), seeds=seeds, progress=True, workers=workers)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("rotdigits")
def bench_rotdigits(
    out: Path = typer.Option(Path("benchmarks/results/rotdigits"), help="Output folder."),
    quick: bool = typer.Option(False, help="One seed, fewer images and epochs (about 2 minutes)."),
    seeds: int = typer.Option(None, min=1, help="Seeds (default 3; quick 1)."),
    models: list[str] = typer.Option(None, help="mdn, bnn, deep_ensemble, bayesian_mdn (default: all)."),
    device: str = typer.Option(None, callback=_device, help="cpu or cuda (default: cuda if available)."),
) -> None:
    """Rotated digits: a CNN backbone with MDN, BNN, ensemble and Bayesian-MDN heads, scored by the KL
    to the known angle distribution per digit class."""
    import sys

    from hidlr.bench import rotdigits
    from hidlr.bench.rotdigits.nets import MODELS

    models = _known("--models", models, MODELS)
    command = "hidlr " + " ".join(sys.argv[1:])
    rotdigits.run(out, quick=quick, seeds=seeds, models=models, device=device, command=command)
    typer.echo(f"report: {out / 'report.md'}")


@bench_app.command("gap")
def bench_gap(
    out: Path = typer.Option(
        Path("results/kl/gap_long_training.json"), callback=_output_file, help="Output JSON file."
    ),
    models: list[str] = typer.Option(None, help="Models (default: bnn, bayesian_mdn)."),
    epochs: int = typer.Option(2000, min=1, help="Training epochs (the KL study's gap runs use 400)."),
    seeds: int = typer.Option(5, min=1, help="Seeds."),
    workers: int = typer.Option(2, min=1, help="Processes side by side."),
) -> None:
    """The limited-data gap experiment alone, with longer training (a robustness check)."""
    from hidlr.bench import kl

    models = _known("--models", models, kl.GAP_MODELS) or ["bnn", "bayesian_mdn"]
    res = kl.gap_check(out, models=models, epochs=epochs, seeds=seeds, workers=workers)
    for m, st in res["summary"].items():
        ratio = "—" if st is None else f"{st['mean']:.2f} ± {st['se']:.2f}"
        typer.echo(f"{m}: epistemic variance gap / near = {ratio}")
    typer.echo(f"written: {out}")


@bench_app.command("gap-reference")
def bench_gap_reference(
    out: Path = typer.Option(Path("benchmarks/results/kl"), help="Output folder (gap_reference.json/.md/.png)."),
    seeds: int = typer.Option(4, min=1, help="Seeds (training samples)."),
    models: list[str] = typer.Option(
        None, help="Approximations (default: bnn, bnn_homoscedastic, laplace, deep_ensemble)."
    ),
    chains: int = typer.Option(4, min=1, help="NUTS chains per seed (run one after the other)."),
    warmup: int = typer.Option(400, min=0, help="NUTS warmup iterations per chain."),
    samples: int = typer.Option(200, min=1, help="NUTS kept iterations per chain."),
    max_tree_depth: int = typer.Option(8, min=1, help="NUTS maximum tree depth."),
    activation: str = typer.Option("relu", help="Reference BNN activation (relu as the models, or tanh)."),
    epochs: int = typer.Option(400, min=1, help="Training epochs of each approximation (as the gap experiment)."),
    note: str = typer.Option("", help="A sentence for the report (e.g. on an earlier run with other settings)."),
) -> None:
    """The gap experiment against a NUTS reference posterior: which approximations grow their epistemic
    variance in the gap, and how close each predictive is to the reference's."""
    import shlex

    from hidlr.bench.kl import gap_reference
    from hidlr.bench.kl.reference import NUTSSettings

    models = _known("--models", models, gap_reference.APPROXIMATIONS)
    settings = NUTSSettings(
        chains=chains, warmup=warmup, samples=samples, max_tree_depth=max_tree_depth, activation=activation
    )
    command = " ".join(
        ["hidlr bench gap-reference", "--out", shlex.quote(str(out)), "--seeds", str(seeds)]
        + [f"--models {m}" for m in models or ()]
        + [f"--chains {chains} --warmup {warmup} --samples {samples} --max-tree-depth {max_tree_depth}"]
        + [f"--activation {activation} --epochs {epochs}"]
    )
    res = gap_reference.run(
        out,
        seeds=seeds,
        models=models or None,
        settings=settings,
        epochs=epochs,
        progress=True,
        command=command,
        note=note,
    )
    for m, st in res["summary"].items():
        r = st["epi_ratio"]
        ratio = "—" if r is None else f"{r['mean']:.2f} ± {r['se']:.2f}"
        typer.echo(f"{m}: epistemic variance gap / near = {ratio}")
    typer.echo(f"report: {out / 'gap_reference.md'}")


@bench_app.command("finetune")
def bench_finetune(
    out: Path = typer.Option(Path("benchmarks/results/finetune"), help="Output folder."),
    quick: bool = typer.Option(False, help="A small BERT pretrained here instead of MiniLM (minutes)."),
    seeds: int = typer.Option(None, min=1, help="Seeds (default: 1; quick 2)."),
    first_seed: int = typer.Option(0, min=0, help="Seeds start here (more seeds for a stored run: --combine)."),
    heads: list[str] = typer.Option(None, help="mdn, gaussian (default: both)."),
    methods: list[str] = typer.Option(None, help="Method names, 'freeze' for the freezing family (default: all)."),
    steps: int = typer.Option(None, min=1, help="Training steps per run (default: 100; quick 150)."),
    batch_size: int = typer.Option(32, min=1, help="Tokens per batch (each with its ten ratings)."),
    costs: bool = typer.Option(True, help="Measure what frozen groups cost, side by side."),
    freeze_max_reach: list[float] = typer.Option(
        None,
        help="Also freeze at every budget with plans kept to this share of the modules, counted back "
        "from the head, so that the backward pass stops there (repeatable; e.g. 0.5).",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    report_only: str = typer.Option(
        None,
        help="Only rebuild the report from OUT/results.json (e.g. of an interrupted run); the text is noted on top.",
    ),
    combine: list[Path] = typer.Option(
        None, help="Results folders to report together in OUT (repeatable; e.g. seeds 0-2 and 3-8); runs nothing."
    ),
) -> None:
    """Fine-tune a pretrained encoder on the VADER lexicon's rating distributions: full, head-only,
    BitFit, LoRA, LoRA+, Hi-DLR, automatic freezing, Prodigy, Schedule-Free; MDN and Gaussian heads."""
    from hidlr.bench.finetune import combine as combine_runs
    from hidlr.bench.finetune import methods as M
    from hidlr.bench.finetune import rebuild_report, run

    heads = _known("--heads", heads, tuple(M.HEADS))
    methods = _known("--methods", methods, (*M.method_table(quick), "freeze"))
    for r in freeze_max_reach or ():
        if not 0.0 < r <= 1.0:
            raise typer.BadParameter(f"must be a fraction in (0, 1], got {r}", param_hint="'--freeze-max-reach'")
    if report_only is not None:
        rebuild_report(out, note=report_only or None)
        typer.echo(f"report: {out / 'report.md'}")
        return
    if combine:
        for d in combine:
            if not (d / "results.json").is_file():
                raise typer.BadParameter(f"no results.json in {d}", param_hint="'--combine'")
        combine_runs(list(combine), out)
        typer.echo(f"report: {out / 'report.md'}")
        return

    run(
        out,
        quick=quick,
        seeds=seeds,
        first_seed=first_seed,
        heads=heads,
        methods=methods,
        steps=steps,
        batch_size=batch_size,
        costs=costs,
        freeze_max_reach=freeze_max_reach or None,
        progress=progress,
    )
    typer.echo(f"report: {out / 'report.md'}")


@app.command()
def influence(
    plan_out: Path = typer.Option(Path("plan.json"), help="Where to write the freezing plan (JSON)."),
    budget: float = typer.Option(
        0.05,
        callback=_fraction,
        help="Fraction of the parameters left trainable.",
    ),
    max_reach: float | None = typer.Option(
        None,
        callback=lambda v: None if v is None else _fraction(v),
        help="Keep only modules among this share of them, counted back from the head, so that the "
        "backward pass stops there (default: any module).",
    ),
    quick: bool = typer.Option(True, help="The small BERT pretrained here (--no-quick: MiniLM)."),
    head: str = typer.Option("mdn", help="mdn or gaussian."),
    steps: int = typer.Option(10, min=1, help="Steps of the short Hi-DLR run."),
    refreshes: int = typer.Option(2, min=1, help="Curvature refreshes during those steps."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
) -> None:
    """Rank a pretrained encoder's modules by influence after a short Hi-DLR run on the lexicon
    task, and write the freezing plan for a parameter budget (the head always trains)."""
    import torch

    from hidlr.bench.finetune import methods as M
    from hidlr.bench.finetune.data import quick_workload, real_workload
    from hidlr.bench.finetune.runner import influence_run
    from hidlr.influence import format_table, influence_table, plan_for

    _known("--head", [head], tuple(M.HEADS))
    torch.set_num_threads(1)
    wl = quick_workload(seed) if quick else real_workload(seed, probe_size=48)
    lr = M.HIDLR_START * (10.0 if quick else 1.0)
    model, opt = influence_run(wl, head, steps=steps, refreshes=refreshes, seed=seed, lr=lr)
    typer.echo(format_table(influence_table(opt)))
    plan = plan_for(opt, budget=budget, model=model, keep=M.head_group_names(opt.param_groups), max_reach=max_reach)
    plan.save(plan_out)
    typer.echo(
        f"plan: {len(plan.kept_groups)} of {len(opt.param_groups)} groups, {plan.trainable_params:,} of "
        f"{plan.total_params:,} parameters ({100 * plan.fraction:.2f}%) trainable"
        + ("" if max_reach is None else f", from the last {max_reach:g} of the groups")
        + f"; written: {plan_out}"
    )
    if plan.kept_groups:
        typer.echo(
            f"the backward pass runs down to {plan.kept_groups[0]}, through {100 * plan.reach:.0f}% of the "
            "groups"
            + ("; --max-reach keeps the plan nearer the head" if max_reach is None and plan.reach > 0.5 else "")
        )


if __name__ == "__main__":
    app()
