"""The command line: commands parse their options and call the runners."""

import json

import pytest
from typer.testing import CliRunner

from hidlr.cli import app


def _flat(output: str) -> str:
    """The output as one line, without the error box's borders (Rich wraps long paths anywhere)."""
    return " ".join(output.replace("│", " ").split())


def test_bench_gap_runs_the_long_training_check(tmp_path):
    out = tmp_path / "gap.json"
    res = CliRunner().invoke(
        app, ["bench", "gap", "--out", str(out), "--models", "bnn", "--epochs", "2", "--seeds", "1", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "bnn: epistemic variance gap / near =" in res.output
    assert json.loads(out.read_text())["epochs"] == 2


def test_bench_gap_reference_runs_nuts_and_the_approximations(tmp_path):
    small = ["--seeds", "1", "--models", "laplace", "--warmup", "5", "--samples", "5", "--max-tree-depth", "3"]
    res = CliRunner().invoke(
        app, ["bench", "gap-reference", "--out", str(tmp_path), *small, "--chains", "2", "--epochs", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "nuts: epistemic variance gap / near =" in res.output and "laplace:" in res.output
    saved = json.loads((tmp_path / "gap_reference.json").read_text())
    assert saved["settings"]["chains"] == 2 and saved["settings"]["warmup"] == 5 and saved["models"] == ["laplace"]
    assert saved["command"].startswith("hidlr bench gap-reference --out")
    assert "--models laplace --chains 2 --warmup 5" in saved["command"]
    bad = CliRunner().invoke(app, ["bench", "gap-reference", "--out", str(tmp_path / "b"), *small, "--chains", "1"])
    assert bad.exit_code != 0 and "chains" in str(bad.exception)


def test_bench_help_lists_every_benchmark():
    res = CliRunner().invoke(app, ["bench", "--help"])
    assert res.exit_code == 0
    for name in ("overhead", "uq-speed", "lr", "uci", "kl", "gap", "gap-reference"):
        assert name in res.output


def test_report_builds_a_page_from_a_results_folder(tmp_path):
    (tmp_path / "report.md").write_text("# A run\n\nText.\n")
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "report page:" in res.output
    assert "<h1>A run</h1>" in (tmp_path / "report.html").read_text()
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in _flat(missing.output), missing.output


@pytest.mark.parametrize(
    "args, option",
    [
        (["demo", "--steps", "0"], "--steps"),
        (["demo", "--seed", "-1"], "--seed"),
        (["influence", "--budget", "0"], "--budget"),
        (["influence", "--budget", "1.5"], "--budget"),
        (["influence", "--refreshes", "0"], "--refreshes"),
        (["influence", "--max-reach", "0"], "--max-reach"),
        (["influence", "--max-reach", "1.5"], "--max-reach"),
        (["bench", "overhead", "--repeats", "0"], "--repeats"),
        (["bench", "uq-speed", "--repeats", "0"], "--repeats"),
        (["bench", "lr", "--seeds", "0"], "--seeds"),
        (["bench", "uci", "--splits", "0"], "--splits"),
        (["bench", "uci", "--workers", "0"], "--workers"),
        (["bench", "uci", "--budget-steps", "0"], "--budget-steps"),
        (["bench", "kl", "--seeds", "0"], "--seeds"),
        (["bench", "rotdigits", "--seeds", "0"], "--seeds"),
        (["bench", "gap", "--epochs", "0"], "--epochs"),
        (["bench", "gap-reference", "--warmup", "-1"], "--warmup"),
        (["bench", "finetune", "--seeds", "0"], "--seeds"),
        (["bench", "finetune", "--batch-size", "0"], "--batch-size"),
        (["bench", "finetune", "--first-seed", "-1"], "--first-seed"),
    ],
)
def test_counts_and_budgets_out_of_range_are_usage_errors_naming_the_option(args, option, tmp_path, monkeypatch):
    """Refused before anything runs or writes (``--seeds 0`` once ran an empty fine-tuning and
    overwrote the stored results)."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in _flat(res.output), res.output
    assert list(tmp_path.iterdir()) == []


def _must_not_run(*args, **kwargs):
    raise AssertionError("the command started work before refusing its options")


@pytest.mark.parametrize(
    "args, option, runner",
    [
        (["demo", "--n", "9"], "--n", "hidlr.demo.run_demo"),
        (["demo", "--out", "."], "--out", "hidlr.demo.run_demo"),
        (["report", "nope"], "results", "hidlr.report.build_results_page"),
        (["influence", "--head", "foo"], "--head", "hidlr.bench.finetune.data.quick_workload"),
        (["bench", "overhead", "--groups", "a,b"], "--groups", "hidlr.bench.overhead.run"),
        (["bench", "overhead", "--groups", "0"], "--groups", "hidlr.bench.overhead.run"),
        (["bench", "overhead", "--groups", "-4"], "--groups", "hidlr.bench.overhead.run"),
        (["bench", "overhead", "--groups", "1,3"], "--groups", "hidlr.bench.overhead.run"),
        (["bench", "overhead", "--device", "foo"], "--device", "hidlr.bench.overhead.run"),
        (["bench", "rotdigits", "--device", "foo"], "--device", "hidlr.bench.rotdigits.run"),
        (["bench", "rotdigits", "--models", "mdn", "--models", "gp"], "--models", "hidlr.bench.rotdigits.run"),
        (["bench", "uci", "--models", "gp"], "--models", "hidlr.bench.uci.run"),
        (["bench", "uci", "--optimizers", "sgd"], "--optimizers", "hidlr.bench.uci.run"),
        (["bench", "kl", "--tasks", "moons"], "--tasks", "hidlr.bench.kl.run"),
        (["bench", "gap", "--models", "gp"], "--models", "hidlr.bench.kl.gap_check"),
        (["bench", "gap-reference", "--models", "gp"], "--models", "hidlr.bench.kl.gap_reference.run"),
        (["bench", "finetune", "--heads", "gp"], "--heads", "hidlr.bench.finetune.run"),
        (["bench", "finetune", "--methods", "sgd"], "--methods", "hidlr.bench.finetune.run"),
        (["bench", "finetune", "--freeze-max-reach", "0"], "--freeze-max-reach", "hidlr.bench.finetune.run"),
        (["bench", "finetune", "--combine", "nope"], "--combine", "hidlr.bench.finetune.combine"),
        (
            ["bench", "finetune", "--freeze-max-reach", "0.5", "--freeze-max-reach", "2"],
            "--freeze-max-reach",
            "hidlr.bench.finetune.run",
        ),
        (["bench", "lr", "--workloads", "nope"], "--workloads", "hidlr.bench.lr.run"),
        (["bench", "lr", "--methods", "nope"], "--methods", "hidlr.bench.lr.run"),
        (["bench", "lr", "--methods", "gen", "--lr0", "-1"], "--lr0", "hidlr.bench.lr.run"),
        (
            ["bench", "lr", "--workloads", "nope", "--store", "s", "--part", "p"],
            "--workloads",
            "hidlr.bench.lr.run_into_store",
        ),
    ],
)
def test_bad_names_paths_and_devices_are_usage_errors_before_any_work(args, option, runner, tmp_path, monkeypatch):
    """Each was once refused only after the work (or its setup) had run, with a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, _must_not_run)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in _flat(res.output), res.output
    assert list(tmp_path.iterdir()) == []


def test_bench_finetune_combine_reports_the_folders_together_and_runs_nothing(tmp_path, monkeypatch):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "results.json").write_text("{}")
    calls = []
    monkeypatch.setattr("hidlr.bench.finetune.run", _must_not_run)
    monkeypatch.setattr("hidlr.bench.finetune.combine", lambda dirs, out: calls.append((dirs, out)))
    args = ["bench", "finetune", "--out", str(tmp_path / "all"), "--combine", str(tmp_path / "a")]
    res = CliRunner().invoke(app, [*args, "--combine", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert calls == [([tmp_path / "a", tmp_path / "b"], tmp_path / "all")]
