"""The UCI protocol's calibration step: disjoint halves, the validation choice, the band, the goal."""

import numpy as np
import pytest

from hidlr.bench.uci.calibrated import chosen_by_validation, coverage_band, split_validation
from hidlr.bench.uci.report_calibrated import best_published_goal, best_published_lines


def test_validation_halves_are_disjoint_and_cover_the_part():
    val = np.arange(100, 161)
    tune, cal = split_validation(val, seed=3)
    assert np.intersect1d(tune, cal).size == 0 and np.array_equal(np.union1d(tune, cal), val)
    assert tune.size == 30 and cal.size == 31
    again = split_validation(val, seed=3)
    assert np.array_equal(again[0], tune) and not np.array_equal(split_validation(val, seed=4)[0], tune)


def _rec(s, split, model, val_ll, ll):
    return {
        "set": s,
        "split": split,
        "model": model,
        "optimizer": "adam",
        "val_ll": val_ll,
        "metrics": {"ll": ll, "rmse": 1.0, "cov90": 0.9},
    }


def test_choice_by_validation_ignores_the_test_score():
    recs = [
        _rec("yacht", 0, "mdn", -1.0, -0.5),
        _rec("yacht", 0, "bnn", -0.2, -3.0),
        _rec("yacht", 1, "mdn", -0.1, -0.7),
        _rec("yacht", 1, "bnn", -0.9, 5.0),
        {**_rec("yacht", 1, "mc_dropout", float("nan"), 9.0)},
    ]
    out = chosen_by_validation(recs)["yacht"]
    assert out["choices"] == {"bnn (adam)": 1, "mdn (adam)": 1}
    assert out["ll"]["mean"] == pytest.approx((-3.0 - 0.7) / 2)


def test_band_and_best_published_goal():
    lo, hi = coverage_band(0.9, n_cal=99, n_test=100, splits=1, sigmas=3.0)
    se = np.sqrt(0.09 * (1 / 101 + 1 / 100))
    assert lo == pytest.approx(0.9 - 3 * se) and hi == pytest.approx(0.9 + 0.02 + 3 * se)
    chosen = {
        "yacht": {"ll": {"mean": -0.10, "se": 0.05, "n": 20}, "choices": {"mdn (adam)": 20}},
        "concrete": {"ll": {"mean": -2.90, "se": 0.05, "n": 20}, "choices": {"bnn (adam)": 20}},
        "wine-quality-red": {"ll": {"mean": 2.0, "se": 0.1, "n": 20}, "choices": {"mdn (adam)": 20}},
    }
    goal = best_published_goal(chosen, {"wine-quality-red"})
    assert goal["sets"]["yacht"]["beats"] and not goal["sets"]["concrete"]["beats"]  # 0.10 < 0.16; 2.90 > 2.83
    assert goal["beaten_continuous"] == 1 and goal["continuous_sets"] == 2
    assert goal["sets"]["wine-quality-red"]["beats"] is None  # a mass on the integers: not compared
    lines = "\n".join(best_published_lines(goal))
    assert "0.16 (WGBoost)" in lines
    assert "| wine-quality-red (integer target) | -2.000 ± 0.100 | 0.89 (Deep evidential) | not comparable |" in lines


def test_infinite_widths_and_log_likelihoods_are_summarized_as_such():
    from hidlr.bench.uci.calibrated import summarize_calibration

    def cal(width95):
        lv = {"0.9": {"cov": 0.9, "width": 2.0}, "0.95": {"cov": 1.0, "width": width95}}
        return {
            "n_cal": 14,
            "n_test": 31,
            "raw": lv,
            "pit": lv,
            "cqr": lv,
            "recalibrate": lv,
            "raw_ll": -1.0,
            "recalibrated_ll": None,
        }

    recs = [{"set": "yacht", "model": "mdn", "optimizer": "adam", "calibrated": cal(w)} for w in (3.0, None)]
    e = summarize_calibration(recs)["yacht"]["mdn"]["adam"]
    assert e["recalibrate"]["0.95"]["width"]["mean"] == float("inf")
    assert e["recalibrate"]["0.9"]["width"]["mean"] == pytest.approx(2.0)
    assert e["recalibrated_ll"]["mean"] == float("-inf") and e["raw_ll"]["mean"] == pytest.approx(-1.0)
