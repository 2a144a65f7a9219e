"""The runnable examples run and do what they claim (few steps)."""

import runpy
from pathlib import Path

import pytest

from hidlr.optim.schedule import anneal_factor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_chooses_rates_away_from_the_start():
    lrs = runpy.run_path(str(EXAMPLES / "quickstart.py"))["main"](steps=60)
    assert len(lrs) == 2 and all(r > 0 for r in lrs)
    assert any(abs(r / 1e-3 - 1) > 0.05 for r in lrs)  # re-chosen, not left at the starting rate


def test_stability_example_runs_every_config():
    table = runpy.run_path(str(EXAMPLES / "stability.py"))["main"](steps=30, seeds=1, lrs=(1e-3,))
    assert set(table) >= {"Adam", "HiDLR defaults"}
    assert all(len(v) == 1 for v in table.values())


def test_uq_quickstart_mdn_beats_bnn_on_a_bimodal_truth():
    scores = runpy.run_path(str(EXAMPLES / "uq_quickstart.py"))["main"](n=800, epochs=25)
    assert scores["MDN"]["kl_to_truth"] < scores["BNN"]["kl_to_truth"]
    assert 0.8 < scores["MDN"]["coverage90"] < 0.97


def test_lightning_example_logs_the_applied_rates_once_per_group(tmp_path):
    out = runpy.run_path(str(EXAMPLES / "lightning_example.py"))["main"](steps=30, log_dir=str(tmp_path))
    assert out["columns"] == ["lr-HiDLR/body", "lr-HiDLR/head"]
    assert out["refreshes"] >= 3 and out["estimates"] != [1e-3, 1e-3]
    opt = out["optimizer"]
    last_step_factor = anneal_factor(opt.rules, opt.step_count - 1)
    assert 0 < last_step_factor < 1  # the trainer's budget turns on the end-of-run anneal
    applied = [e * last_step_factor for e in out["estimates"]]  # no refresh after the last batch start
    assert list(out["last_logged"].values()) == pytest.approx(applied, rel=1e-12)


def test_transformers_example_logs_the_applied_rates_per_group():
    out = runpy.run_path(str(EXAMPLES / "transformers_example.py"))["main"](steps=30)
    last = out["logged"][-1]
    assert out["refreshes"] >= 3 and out["estimates"] != [1e-4, 1e-4]
    assert last["learning_rate"] == 0.0 and last["learning_rate/head"] == 0.0  # the anneal ends at 0
