"""Summaries of the UCI protocol's records: means with standard errors and paired differences."""

import math

import numpy as np
import pytest

from hidlr.bench.uci.summary import model_contrast, paired_difference, summarize
from tests.bench.uci.conftest import summary_record as _record


def test_summarize_mean_and_standard_error_over_splits():
    lls = [-3.0, -2.0, -2.5, -3.5]
    recs = [_record("concrete", "mdn", "hidlr", i, v) for i, v in enumerate(lls)]
    st = summarize(recs)["concrete"]["mdn"]["hidlr"]
    assert st["ll"]["mean"] == pytest.approx(-2.75)
    assert st["ll"]["se"] == pytest.approx(np.std(lls, ddof=1) / 2)
    assert st["ll"]["n"] == 4
    assert st["time_s"] == pytest.approx(12.0)


def test_paired_difference_by_split():
    recs = [
        _record("yacht", "bnn", "hidlr", 0, -1.0),
        _record("yacht", "bnn", "adam", 0, -1.5),
        _record("yacht", "bnn", "hidlr", 1, -2.0),
        _record("yacht", "bnn", "adam", 1, -1.0),
    ]
    d = paired_difference(recs)["yacht"]["bnn"]
    assert d["mean"] == pytest.approx(-0.25)  # (0.5 + -1.0) / 2
    assert d["se"] == pytest.approx(np.std([0.5, -1.0], ddof=1) / math.sqrt(2))


def test_model_contrast_pairs_models_by_split_and_optimizer():
    recs = [
        _record("yacht", "mdn", "adam", 0, -1.0),
        _record("yacht", "bnn", "adam", 0, -1.5),
        _record("yacht", "mdn", "adam", 1, -0.5),
        _record("yacht", "bnn", "adam", 1, -2.0),
        _record("yacht", "mdn", "hidlr", 0, -1.0),
        _record("yacht", "bnn", "hidlr", 1, -1.0),
    ]
    d = model_contrast(recs, "mdn", "bnn")
    assert d["yacht"]["adam"]["mean"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    assert d["yacht"]["adam"]["se"] == pytest.approx(np.std([0.5, 1.5], ddof=1) / math.sqrt(2))
    assert "hidlr" not in d["yacht"]  # no split has both models under Hi-DLR
