"""Aggregation and slope fits used by the benchmark reports, against hand-computed values."""

import math

import numpy as np
import pytest

from hidlr.bench import reporting as rep


def test_mean_se_hand_computed():
    st = rep.mean_se([1.0, 2.0, 3.0, 4.0])
    assert st["mean"] == pytest.approx(2.5)
    # sample std (ddof=1) = sqrt(5/3); s.e. = that / sqrt(4)
    assert st["se"] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert st["n"] == 4


def test_mean_se_single_value_and_errors():
    st = rep.mean_se([3.0])
    assert st["mean"] == 3.0 and math.isnan(st["se"])
    with pytest.raises(ValueError, match="no values"):
        rep.mean_se([])
    with pytest.raises(ValueError, match="non-finite"):
        rep.mean_se([1.0, float("nan")])


def test_fmt_mean_se():
    assert rep.fmt_mean_se({"mean": -3.061, "se": 0.0249}, 2) == "-3.06 ± 0.02"
    assert rep.fmt_mean_se(None) == "—"


def test_loglog_slope_hand_computed():
    # log n = 1, 2, 3 and log KL = 0, -1, -3: slope = -3 / 2, intercept = -4/3 + 3 = 5/3
    n = np.exp([1.0, 2.0, 3.0])
    kl = np.exp([0.0, -1.0, -3.0])
    b, a = rep.loglog_slope(n, kl)
    assert b == pytest.approx(-1.5)
    assert a == pytest.approx(5 / 3)


def test_loglog_slope_exact_power_law():
    n = np.array([250, 500, 1000, 2000, 4000], dtype=float)
    b, a = rep.loglog_slope(n, 3.0 * n**-0.7)
    assert b == pytest.approx(-0.7) and a == pytest.approx(math.log(3.0))


def test_loglog_slope_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        rep.loglog_slope([1, 2], [0.1, -0.1])
    with pytest.raises(ValueError, match="distinct"):
        rep.loglog_slope([5, 5], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        rep.loglog_slope([1, 2, 3], [0.1, 0.2])


def test_slope_summary_two_seeds():
    n = np.array([10.0, 100.0, 1000.0])
    per_seed = [n**-1.0, 10.0 * n**-2.0]
    s = rep.slope_summary(n, per_seed, n_boot=200)
    assert s["per_seed_slopes"] == pytest.approx([-1.0, -2.0])
    assert s["per_seed"]["mean"] == pytest.approx(-1.5)
    assert s["per_seed"]["se"] == pytest.approx(0.5)
    # the same sizes for every seed: the pooled slope is the mean of the per-seed slopes
    assert s["pooled_slope"] == pytest.approx(-1.5)
    lo, hi = s["boot_ci95"]
    assert -2.0 - 1e-9 <= lo <= hi <= -1.0 + 1e-9
    assert s["clipped"] == 0


def test_slope_summary_clips_nonpositive_kl():
    s = rep.slope_summary([10, 100], [[0.1, -0.01], [0.1, 0.01]], n_boot=10)
    assert s["clipped"] == 1


def test_markdown_table():
    t = rep.markdown_table(["a", "b"], [[1, 2]])
    assert t.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]
