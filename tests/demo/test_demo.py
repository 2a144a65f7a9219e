"""The demo: what it measures, the step-0 explanation, the takeaway, the page (few steps)."""

import math

import numpy as np
import pytest
from rich.console import Console

from hidlr.demo import run_demo
from hidlr.demo.page import takeaway
from hidlr.demo.rates import RunResult, explain_step_zero, run_rates, train_digits
from hidlr.demo.uncertainty import ModelResult, UncertaintyDemo


@pytest.fixture(scope="module")
def small():
    return run_demo(steps=12, n=120, epochs=2, out=None, console=Console(quiet=True), progress=False)


def test_demo_runs_both_optimizers_from_every_rate(small):
    names = [r.name for r in small.runs]
    assert names == [
        "Adam from lr=0.0001",
        "Hi-DLR(Adam) from lr=0.0001",
        "Adam from lr=0.001",
        "Hi-DLR(Adam) from lr=0.001",
        "Adam from lr=0.01",
        "Hi-DLR(Adam) from lr=0.01",
    ]
    for r in small.runs:
        assert [t for t, _ in r.rates] == list(range(12))  # a rate for every step
        assert len(r.train_loss) == 12 and r.val_steps[0] == 0 and r.val_steps[-1] == 12
        assert math.isfinite(r.val_loss) and 0 <= r.val_acc <= 1
    adam = small.runs[0]
    assert all(v == [1e-4] * 3 for _, v in adam.rates)
    assert [m.name for m in small.uncertainty.models] == ["MDN", "BNN"]
    assert small.page is None


def test_step_zero_applies_the_refreshed_rate_and_the_explanation_says_why(small):
    run = small.runs[3]  # Hi-DLR from 1e-3
    assert run.refresh_steps[0] == 0
    rec = run.first_refresh
    step0 = run.rates[0][1]
    assert step0 == pytest.approx([g["estimate"] for g in rec["groups"]])
    text = explain_step_zero(run)
    for name, g in zip(run.group_names, rec["groups"]):
        if g["accepted"]:  # the smoothing rule the text states, checked on the record itself
            assert g["estimate"] == pytest.approx(run.ema * g["rate"] + (1 - run.ema) * g["target"])
            assert f"{name}: Newton {g['newton_rate']:.2e}, target {g['target']:.2e}" in text
        assert f"{g['estimate']:.2e}" in text
    assert any(v != 1e-3 for v in step0)  # the reason the explanation exists
    assert "refresh" in text and "lr0 = 1.00e-03" in text


def test_hidlr_recovers_from_a_poor_starting_rate():
    adam, hidlr = run_rates((1e-4,), steps=120, seed=0)
    assert max(max(r) for _, r in hidlr.rates) > 2e-4  # the rates grew from the poor start
    assert max(hidlr.rates[-1][1]) < 0.1 * max(max(r) for _, r in hidlr.rates)  # and were annealed at the end
    assert hidlr.val_loss < adam.val_loss


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="steps"):
        train_digits("x", 1e-3, False, steps=0, seed=0)
    with pytest.raises(ValueError, match="lrs"):
        run_demo(lrs=(0.0,), out=None, console=Console(quiet=True))


def _run(opt: str, lr0: float, loss: float) -> RunResult:
    return RunResult(f"{opt} {lr0}", opt, lr0, loss, 0.9, 1.0, rates=[(0, [lr0])])


def _model(name: str, kl: float) -> ModelResult:
    z = np.zeros(2)
    return ModelResult(name, 1.0, {"kl_to_truth": kl}, z, z, z, z, z, z, {}, (z, z), False)


def test_takeaway_states_what_was_measured():
    u = UncertaintyDemo(10, np.zeros(1), np.zeros(1), np.zeros(1), {}, [_model("MDN", 0.1), _model("BNN", 1.2)])
    steady = [
        _run("Adam", 1e-4, 1.3),
        _run("Hi-DLR(Adam)", 1e-4, 0.13),
        _run("Adam", 1e-2, 0.12),
        _run("Hi-DLR(Adam)", 1e-2, 0.12),
    ]
    line = takeaway(steady, u)
    assert "0.120-0.130 against Adam's 0.120-1.300 (less sensitive" in line
    assert "the MDN is closer to the true density than the BNN (KL 0.100 vs 1.200 nats)" in line
    shaky = [
        _run("Adam", 1e-4, 0.2),
        _run("Hi-DLR(Adam)", 1e-4, 0.9),
        _run("Adam", 1e-2, 0.2),
        _run("Hi-DLR(Adam)", 1e-2, 0.1),
    ]
    assert "(not less sensitive" in takeaway(shaky, u)
