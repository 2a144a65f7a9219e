"""The shared option checks: flags and trunk widths refused with an error naming them."""

import numpy as np
import pytest

from hidlr.uq.models.checks import check_flag, check_hidden


@pytest.mark.parametrize("value", [1, 0, "yes", None, [True]])
def test_check_flag_refuses_anything_but_true_and_false(value):
    with pytest.raises(TypeError, match="refit must be True or False"):
        check_flag("refit", value)


def test_check_flag_accepts_python_and_numpy_bools():
    assert check_flag("refit", True) is True and check_flag("refit", np.bool_(False)) is False


@pytest.mark.parametrize("value", [2.5, "50", None, object()])
def test_check_hidden_refuses_other_kinds_naming_hidden(value):
    with pytest.raises(TypeError, match="hidden must be"):
        check_hidden(value)


@pytest.mark.parametrize("value", [(), (0,), (-5,), (True,)])
def test_check_hidden_refuses_bad_widths(value):
    with pytest.raises(ValueError, match="hidden must be"):
        check_hidden(value)


def test_check_hidden_reads_an_int_a_sequence_and_an_array():
    assert check_hidden(50) == (50,)
    assert check_hidden([100, 50]) == (100, 50)
    assert check_hidden(np.array([8, 4])) == (8, 4)
