"""Fitted scaling: float64 arithmetic, outliers, buffers that travel with the saved module."""

import io
import warnings

import numpy as np
import pytest
import torch

from hidlr.uq.models import MDN, ScaledNet
from hidlr.uq.models.scaling import fit_scaling, outlier_rows

FIXED = {"early_stopping": False, "epochs": 30, "hidden": (16,), "batch_size": 32}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    return X, X @ np.array([1.0, -0.5]) + 0.1 * rng.normal(size=200)


def test_a_large_offset_is_not_rounded(data):
    """A float32 net fitted to float64 targets near 1e8 (float32 spacing there: 8) predicts what it
    predicts without the offset, plus the offset (up to float32 training noise, far below 8)."""
    X, y = data
    plain = MDN(2, **FIXED).fit(X, y).predict(X)
    offset = MDN(2, **FIXED).fit(X, y + 1e8).predict(X)
    assert offset.dtype == np.float64
    np.testing.assert_allclose(offset - 1e8, plain, atol=0.05)
    assert np.sqrt(np.mean((offset - 1e8 - y) ** 2)) < 0.5


def test_outlier_rows_are_named_and_robust_scaling_ignores_them():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(400, 2)), rng.normal(size=400)
    y[[17, 250]] = [1e6, -5e5]
    X64, y64 = torch.as_tensor(X), torch.as_tensor(y)
    assert outlier_rows(y64).tolist() == [17, 250]
    with pytest.warns(UserWarning, match=r"2 value\(s\).*row\(s\) 17, 250"):
        fit_scaling(X64, y64)
    with warnings.catch_warnings(record=True):
        robust = fit_scaling(X64, y64, "robust")
    clean = np.delete(y, [17, 250])
    assert abs(float(robust["y_shift"]) - np.median(y)) < 1e-12
    assert 0.8 * clean.std() < float(robust["y_scale"]) < 1.2 * clean.std()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without outliers
        fit_scaling(X64[:, :1], torch.as_tensor(clean))
    with pytest.raises(ValueError, match="target_scaling"):
        fit_scaling(X64, y64, "minmax")


def test_saved_module_predicts_in_user_units(data):
    X, y = data
    m = MDN(2, **FIXED).fit(X, 50.0 * y + 300.0)
    buf = io.BytesIO()
    torch.save(m.module_, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(torch.as_tensor(X)).mean.numpy(), m.predict(X), rtol=1e-12)
    # a state_dict carries the scaling too
    fresh = ScaledNet(
        m.build(2, torch.zeros(5), 200), {k: torch.zeros(()) for k in ("x_shift", "x_scale", "y_shift", "y_scale")}
    )
    fresh.x_shift, fresh.x_scale = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    fresh.load_state_dict(m.module_.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(fresh(torch.as_tensor(X)).mean.numpy(), m.predict(X), rtol=1e-12)
    # moving the module to another dtype moves the net, and keeps the scaling in float64
    loaded.to(torch.float64)
    assert loaded.y_shift.dtype == torch.float64 and next(loaded.net.parameters()).dtype == torch.float64
    assert float(loaded.y_shift) == pytest.approx(300.0 + 50.0 * y.mean(), rel=1e-12)


@pytest.mark.parametrize("factor", [1e200, 1e-300, 1e300, 1.0])
@pytest.mark.parametrize("kind", ["standard", "robust"])
def test_scaling_of_huge_and_tiny_data_matches_numpy(factor, kind):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(50, 2)), rng.normal(size=50)
    fitted = fit_scaling(torch.as_tensor(X * factor), torch.as_tensor(y * factor), kind, warn=False)
    if kind == "standard":
        shift, scale, y_shift, y_scale = X.mean(0), X.std(0), y.mean(), y.std()
    else:
        q = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
        qy = np.quantile(y, [0.25, 0.5, 0.75])
        iqr_sd = 1.3489795003921634  # the IQR of a standard normal
        shift, scale, y_shift, y_scale = q[1], (q[2] - q[0]) / iqr_sd, qy[1], (qy[2] - qy[0]) / iqr_sd
    np.testing.assert_allclose(fitted["x_scale"].numpy() / factor, scale, rtol=1e-12)
    np.testing.assert_allclose(fitted["x_shift"].numpy() / factor, shift, rtol=1e-12)
    np.testing.assert_allclose(float(fitted["y_scale"]) / factor, y_scale, rtol=1e-12)
    np.testing.assert_allclose(float(fitted["y_shift"]) / factor, y_shift, rtol=1e-12)


def test_scaling_of_ordinary_data_is_unchanged_to_the_last_bit():
    t = torch.as_tensor(np.random.default_rng(3).normal(3.0, 7.0, size=(40, 3)))
    fitted = fit_scaling(t, t[:, 0], warn=False)
    assert torch.equal(fitted["x_scale"], t.std(0, unbiased=False)) and torch.equal(fitted["x_shift"], t.mean(0))


def test_a_fit_on_huge_or_tiny_inputs_uses_them(data):
    """Inputs rescaled by a power of two standardize to the same numbers: the same fit, not inputs
    ignored (an infinite scale) or blown up (a scale that underflowed to 0 and was replaced by 1)."""
    X, y = data
    plain = MDN(2, **FIXED).fit(X, y).predict(X)
    for factor in (2.0**600, 2.0**-1000):
        np.testing.assert_array_equal(MDN(2, **FIXED).fit(X * factor, y).predict(X * factor), plain)


def test_data_that_cannot_be_standardized_are_refused_naming_them(data):
    X, y = data
    wide = X[:40].copy()
    wide[:, 0] = 1.7e308
    wide[0, 0] = -1.7e308  # the mean is near 1.5e308: -1.7e308 minus it overflows
    with pytest.raises(ValueError, match="X cannot be standardized"):
        MDN(2, **FIXED).fit(wide, y[:40])
    with pytest.raises(ValueError, match="y cannot be standardized"):
        MDN(2, **FIXED).fit(X[:40], wide[:, 0])
