"""Shared helpers of the UCI benchmark's tests."""

import numpy as np


def summary_record(s, m, o, split, ll, rmse=1.0):
    """A finished job record of the protocol with the given log-likelihood and RMSE."""
    metrics = {
        "ll": ll,
        "rmse": rmse,
        "crps": 0.5,
        "cov90": 0.9,
        "cov95": 0.95,
        "width90": 2.0,
        "width95": 2.5,
        "calibration_error": 0.01,
        "reliability": list(np.linspace(0.05, 0.95, 19)),
    }
    return {
        "set": s,
        "model": m,
        "optimizer": o,
        "split": split,
        "epochs": 10,
        "tune_s": 1.0,
        "fit_s": 2.0,
        "metrics": metrics,
    }
