"""UCI regression benchmark sets and their 20 standard train/test splits.

The files are the standard copies used by the probabilistic-backpropagation, MC-dropout and
deep-ensembles papers: one folder per set holding ``data.txt`` (whitespace-separated floats, one
row per example, the target in one column, by default the last). They are read from, in order:
the ``root`` argument, the ``HIDLR_UCI_ROOT`` environment variable, or a ``shared/data/uci`` folder
found by walking up from the working directory and from this package's location. Any folder in
the same format works when given by path.

Splits are regenerated exactly as published: ``np.random.seed(1)``, then for each split
``perm = np.random.choice(range(n), n, replace=False)``, the first ``round(0.9 n)`` rows train.
Each :class:`UCISplit` z-scores inputs and target with its training statistics and converts
predictions and metrics back to the target's original units.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hidlr.uq.distributions import GaussianMixture

__all__ = ["UCI_SETS", "UCIDataset", "UCISplit", "find_uci_root", "load_uci"]

#: The five standard sets shipped in ``shared/data/uci``.
UCI_SETS: tuple[str, ...] = ("concrete", "energy", "kin8nm", "wine-quality-red", "yacht")

_ENV = "HIDLR_UCI_ROOT"
_WHERE = (
    "The UCI regression sets come from the UCI Machine Learning Repository "
    "(https://archive.ics.uci.edu, CC BY 4.0); the standard benchmark copies (one folder per set "
    "with a whitespace-separated data.txt, as used by the probabilistic-backpropagation and "
    "MC-dropout papers) are the expected format. Point to them with root=..., the "
    f"{_ENV} environment variable, or place them at <project>/../shared/data/uci."
)

# metric name -> how a value computed on z-scored targets maps to original units
_SCALE_BY_STD = {"rmse", "mae", "crps", "width", "interval_width", "std"}
_UNITLESS = {"coverage", "calibration_error", "pit", "kl"}


def find_uci_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding one sub-folder per UCI set; raises ``FileNotFoundError`` saying where."""
    if root is not None:
        p = Path(root).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"UCI data folder {p} does not exist. {_WHERE}")
        return p
    env = os.environ.get(_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{_ENV}={env} is not a folder. {_WHERE}")
        return p
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    tried: list[str] = []
    for start in starts:
        for base in (start, *start.parents):
            cand = base / "shared" / "data" / "uci"
            if cand.is_dir():
                return cand
        tried.append(str(start))
    raise FileNotFoundError(f"no shared/data/uci folder found above {' or '.join(tried)}. {_WHERE}")


@dataclass(frozen=True)
class UCISplit:
    """One train/test split, z-scored with the training part's statistics.

    Arrays are float64 NumPy: ``X_train (n_train, d)``, ``y_train (n_train,)``, ``X_test``,
    ``y_test`` (all standardised), the raw targets ``y_train_raw``/``y_test_raw``, and the indices
    into the full set. ``x_std``/``y_std`` are guarded: a constant column gets std 1.
    """

    index: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    y_train_raw: np.ndarray
    y_test_raw: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    _X_raw: np.ndarray = field(repr=False)
    _y_raw: np.ndarray = field(repr=False)

    @classmethod
    def from_indices(
        cls, X: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, index: int = 0
    ) -> UCISplit:
        """Standardise ``X (n, d)``, ``y (n,)`` with the statistics of rows ``train_idx``."""
        if len(train_idx) < 2 or len(test_idx) < 1:
            raise ValueError(f"a split needs >= 2 training and >= 1 test rows, got {len(train_idx)}, {len(test_idx)}")
        xm, xs = X[train_idx].mean(0), X[train_idx].std(0)
        xs = np.where(xs > 0, xs, 1.0)
        ym, ys = float(y[train_idx].mean()), float(y[train_idx].std())
        ys = ys if ys > 0 else 1.0
        return cls(
            index=index,
            train_idx=train_idx,
            test_idx=test_idx,
            X_train=(X[train_idx] - xm) / xs,
            y_train=(y[train_idx] - ym) / ys,
            X_test=(X[test_idx] - xm) / xs,
            y_test=(y[test_idx] - ym) / ys,
            y_train_raw=y[train_idx],
            y_test_raw=y[test_idx],
            x_mean=xm,
            x_std=xs,
            y_mean=ym,
            y_std=ys,
            _X_raw=X,
            _y_raw=y,
        )

    def validation_split(self, fraction: float = 0.2, seed: int = 0) -> UCISplit:
        """Carve a validation part out of the training rows, for choosing hyperparameters.

        The training indices are shuffled with ``np.random.RandomState(seed)``; the last
        ``round(fraction * n_train)`` become the returned split's *test* part (the validation set),
        the rest its training part, re-standardised with their own statistics. The test rows of
        ``self`` are never touched.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        perm = np.random.RandomState(seed).permutation(len(self.train_idx))
        n_val = max(1, int(round(fraction * len(perm))))
        idx = self.train_idx[perm]
        return UCISplit.from_indices(self._X_raw, self._y_raw, idx[:-n_val], idx[-n_val:], self.index)

    # ------------------------------------------------------------- back to original units
    def to_units(self, dist: GaussianMixture) -> GaussianMixture:
        """A predictive mixture over standardised targets, mapped to the original units."""
        return dist.to_units(self.y_mean, self.y_std)

    def y_to_units(self, values: np.ndarray) -> np.ndarray:
        """Standardised target values (e.g. predicted means) in original units."""
        return self.y_mean + self.y_std * np.asarray(values, dtype=np.float64)

    def metric_to_units(self, name: str, value: float) -> float:
        """A metric computed on standardised targets, in the target's original units.

        ``rmse``, ``mae``, ``crps``, ``width`` scale by ``y_std``; ``nll`` adds ``log y_std``;
        ``log_likelihood`` subtracts it; ``coverage``, ``calibration_error``, ``kl`` are unchanged.
        """
        key = name.split("@")[0]
        if key in _SCALE_BY_STD:
            return float(value) * self.y_std
        if key == "nll":
            return float(value) + math.log(self.y_std)
        if key in ("log_likelihood", "ll"):
            return float(value) - math.log(self.y_std)
        if key in _UNITLESS:
            return float(value)
        raise ValueError(f"no unit rule for metric {name!r}")


@dataclass(frozen=True)
class UCIDataset:
    """A UCI regression set: ``X (n, d)`` and ``y (n,)`` float64 arrays read from ``path``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    path: Path

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def split_indices(self, n_splits: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train_idx, test_idx)`` of the standard splits, regenerated from one seeded stream."""
        if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 1:
            raise ValueError(f"n_splits must be a positive int, got {n_splits!r}")
        rng = np.random.RandomState(1)  # the same stream as np.random.seed(1)
        n = self.n
        n_train = int(round(0.9 * n))
        out = []
        for _ in range(n_splits):
            perm = rng.choice(range(n), n, replace=False)
            out.append((perm[:n_train], perm[n_train:]))
        return out

    def splits(self, n_splits: int = 20) -> list[UCISplit]:
        """The standard 90/10 splits, each z-scored with its training statistics."""
        return [
            UCISplit.from_indices(self.X, self.y, tr, te, i) for i, (tr, te) in enumerate(self.split_indices(n_splits))
        ]

    def split(self, index: int, n_splits: int = 20) -> UCISplit:
        """Split number ``index`` (0-based) of the standard ``n_splits``."""
        if not 0 <= index < n_splits:
            raise ValueError(f"split index must lie in [0, {n_splits}), got {index}")
        tr, te = self.split_indices(index + 1)[index]
        return UCISplit.from_indices(self.X, self.y, tr, te, index)


def load_uci(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None, target: int = -1) -> UCIDataset:
    """Read a UCI set by name (``concrete``, ``energy``, ...) or by a folder / ``data.txt`` path.

    ``target`` is the target column (default: the last); every other column is a feature.
    """
    given = Path(name_or_path).expanduser()
    if given.is_file():
        data_file, name = given, given.parent.name
    elif given.is_dir():
        data_file, name = given / "data.txt", given.name
    elif isinstance(name_or_path, str) and os.sep not in name_or_path and "/" not in name_or_path:
        data_file, name = find_uci_root(root) / name_or_path / "data.txt", name_or_path
    else:
        raise FileNotFoundError(f"{given} does not exist. {_WHERE}")
    if not data_file.is_file():
        known = f" Known sets: {', '.join(UCI_SETS)}." if name not in UCI_SETS else ""
        raise FileNotFoundError(f"no data file {data_file}.{known} {_WHERE}")
    try:
        data = np.loadtxt(data_file, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{data_file} is not a whitespace-separated table of numbers: {exc}") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{data_file} holds no rows")
    if data.shape[1] < 2:
        raise ValueError(f"{data_file} needs at least one feature and a target column, got {data.shape[1]} column(s)")
    if not np.all(np.isfinite(data)):
        bad = np.unique(np.nonzero(~np.isfinite(data))[0])[:5]
        raise ValueError(f"{data_file} contains NaN or inf (rows {bad.tolist()} ...)")
    cols = data.shape[1]
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not -cols <= target < cols:
        raise ValueError(f"target column {target!r} out of range for {cols} columns")
    t = int(target) % cols
    X = np.delete(data, t, axis=1)
    return UCIDataset(name=name, X=np.ascontiguousarray(X), y=data[:, t].copy(), path=data_file)
