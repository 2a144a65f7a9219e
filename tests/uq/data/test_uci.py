"""UCI loader: exact regeneration of the standard splits, z-scoring, units, and error paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hidlr.uq import GaussianMixture, metrics
from hidlr.uq.data import UCI_SETS, find_uci_root, load_uci

# First training indices of split 0 and split 19, from the data folder's README.
PUBLISHED = {
    "concrete": ([339, 244, 882, 567, 923], [663, 364, 983, 970, 689]),
    "energy": ([285, 101, 581, 352, 726], [307, 229, 41, 44, 247]),
    "kin8nm": ([3894, 4276, 3414, 4165, 7385], [5370, 3327, 2649, 6655, 950]),
    "wine-quality-red": ([75, 1283, 408, 1281, 1118], [702, 834, 969, 376, 263]),
    "yacht": ([73, 304, 228, 238, 259], [122, 18, 305, 94, 132]),
}
SHAPES = {
    "concrete": (1030, 8),
    "energy": (768, 8),
    "kin8nm": (8192, 8),
    "wine-quality-red": (1599, 11),
    "yacht": (308, 6),
}


def _root() -> Path:
    try:
        return find_uci_root()
    except FileNotFoundError:
        pytest.skip("UCI data folder not available")


@pytest.mark.parametrize("name", UCI_SETS)
def test_standard_splits_regenerate_exactly(name):
    ds = load_uci(name, root=_root())
    assert (ds.X.shape) == SHAPES[name] and ds.y.shape == (SHAPES[name][0],)
    idx = ds.split_indices(20)
    assert len(idx) == 20
    first0, first19 = PUBLISHED[name]
    assert idx[0][0][:5].tolist() == first0
    assert idx[19][0][:5].tolist() == first19
    n = ds.n
    for tr, te in idx:
        assert len(tr) == round(0.9 * n) and len(tr) + len(te) == n
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))
    # the legacy global generator gives the same stream
    np.random.seed(1)
    for i in range(20):
        perm = np.random.choice(range(n), n, replace=False)
        if i in (0, 7, 19):
            assert np.array_equal(perm[: round(0.9 * n)], idx[i][0])
    assert np.array_equal(ds.split(19).train_idx, idx[19][0])


def test_zscoring_uses_training_statistics():
    ds = load_uci("yacht", root=_root())
    sp = ds.splits(3)[2]
    Xtr, ytr = ds.X[sp.train_idx], ds.y[sp.train_idx]
    np.testing.assert_allclose(sp.x_mean, Xtr.mean(0))
    np.testing.assert_allclose(sp.y_std, ytr.std())
    np.testing.assert_allclose(sp.X_train.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(sp.X_train.std(0), 1.0, atol=1e-12)
    assert abs(sp.y_train.mean()) < 1e-12 and abs(sp.y_train.std() - 1.0) < 1e-12
    np.testing.assert_allclose(sp.X_test, (ds.X[sp.test_idx] - Xtr.mean(0)) / Xtr.std(0))
    np.testing.assert_allclose(sp.y_test, (ds.y[sp.test_idx] - ytr.mean()) / ytr.std())
    np.testing.assert_allclose(sp.y_to_units(sp.y_test), sp.y_test_raw)


def test_constant_column_gets_unit_std_and_custom_target(tmp_path):
    data = np.column_stack([np.arange(30.0), np.full(30, 7.0), np.linspace(-1, 1, 30) ** 2])
    np.savetxt(tmp_path / "data.txt", data)
    ds = load_uci(tmp_path)  # a folder given by path; target = last column
    assert ds.name == tmp_path.name and ds.X.shape == (30, 2)
    sp = ds.splits(1)[0]
    assert sp.x_std[1] == 1.0 and np.all(sp.X_train[:, 1] == 0.0)
    ds0 = load_uci(tmp_path / "data.txt", target=0)  # the file itself, target in column 0
    np.testing.assert_array_equal(ds0.y, np.arange(30.0))
    np.testing.assert_array_equal(ds0.X, data[:, 1:])
    # n = 30 -> 27 training rows
    assert len(sp.train_idx) == 27


def test_metric_and_distribution_units_round_trip():
    ds = load_uci("concrete", root=_root())
    sp = ds.split(0)
    rng = np.random.default_rng(0)
    mu = torch.from_numpy(sp.y_test + 0.3 * rng.standard_normal(len(sp.y_test)))
    sd = torch.full_like(mu, 0.4)
    dist = GaussianMixture.from_normal(mu, sd)
    dist_raw = sp.to_units(dist)
    for name, fn in (("rmse", metrics.rmse), ("mae", metrics.mae), ("crps", metrics.crps), ("nll", metrics.nll)):
        z = fn(dist, sp.y_test)
        raw = fn(dist_raw, sp.y_test_raw)
        assert sp.metric_to_units(name, z) == pytest.approx(raw, rel=1e-9), name
    assert sp.metric_to_units("log_likelihood", -metrics.nll(dist, sp.y_test)) == pytest.approx(
        -metrics.nll(dist_raw, sp.y_test_raw), rel=1e-9
    )
    assert sp.metric_to_units("coverage@0.9", 0.87) == 0.87
    assert sp.metric_to_units("width@0.9", metrics.interval_width(dist, 0.9)) == pytest.approx(
        metrics.interval_width(dist_raw, 0.9), rel=1e-9
    )
    with pytest.raises(ValueError, match="no unit rule"):
        sp.metric_to_units("bogus", 1.0)


def test_validation_split_is_carved_from_training_rows():
    sp = load_uci("energy", root=_root()).split(3)
    val = sp.validation_split(0.2, seed=0)
    assert len(val.test_idx) == round(0.2 * len(sp.train_idx))
    assert set(val.train_idx) | set(val.test_idx) == set(sp.train_idx)
    assert not set(val.train_idx) & set(val.test_idx)
    assert not set(val.test_idx) & set(sp.test_idx)
    np.testing.assert_array_equal(val.test_idx, sp.validation_split(0.2, seed=0).test_idx)
    assert not np.array_equal(val.test_idx, sp.validation_split(0.2, seed=1).test_idx)
    np.testing.assert_allclose(val.X_train.mean(0), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="fraction"):
        sp.validation_split(1.0)


def test_missing_folder_says_where_the_data_come_from(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="UCI Machine Learning Repository"):
        load_uci("concrete", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="HIDLR_UCI_ROOT"):
        load_uci("concrete", root=tmp_path)  # folder exists, set missing
    monkeypatch.setenv("HIDLR_UCI_ROOT", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="HIDLR_UCI_ROOT"):
        find_uci_root()
    monkeypatch.delenv("HIDLR_UCI_ROOT")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hidlr.uq.data.uci.__file__", str(tmp_path / "pkg" / "uci.py"))
    with pytest.raises(FileNotFoundError, match="no shared/data/uci folder"):
        find_uci_root()
    (tmp_path / "shared" / "data" / "uci").mkdir(parents=True)
    assert find_uci_root() == (tmp_path / "shared" / "data" / "uci").resolve()
    monkeypatch.setenv("HIDLR_UCI_ROOT", str(tmp_path))
    assert find_uci_root() == tmp_path


def test_bad_files_and_arguments(tmp_path):
    (tmp_path / "nan").mkdir()
    np.savetxt(tmp_path / "nan" / "data.txt", np.array([[1.0, 2.0], [math.nan, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        load_uci(tmp_path / "nan")
    (tmp_path / "one").mkdir()
    np.savetxt(tmp_path / "one" / "data.txt", np.arange(5.0)[:, None])
    with pytest.raises(ValueError, match="feature and a target"):
        load_uci(tmp_path / "one")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "data.txt").write_text("a b c\n1 2 3\n")
    with pytest.raises(ValueError, match="table of numbers"):
        load_uci(tmp_path / "text")
    np.savetxt(tmp_path / "data.txt", np.ones((4, 3)))
    with pytest.raises(ValueError, match="target column"):
        load_uci(tmp_path, target=3)
    ds = load_uci(tmp_path)
    with pytest.raises(ValueError, match="n_splits"):
        ds.splits(0)
    with pytest.raises(ValueError, match="split index"):
        ds.split(20)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_uci(tmp_path / "missing" / "data.txt")
