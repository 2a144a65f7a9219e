"""The shared option checks: flags and trunk widths refused with an error naming them."""

import numpy as np
import pytest
import torch
from torch import nn

from hidlr.uq.models.checks import activation_module, check_flag, check_hidden, check_validation_data


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


@pytest.mark.parametrize(
    "value, error, match",
    [
        (np.zeros((4, 2)), TypeError, "validation_data must be a pair"),
        ("data", TypeError, "validation_data must be a pair"),
        ((np.zeros((4, 2)), np.zeros(3)), ValueError, "validation_data: X and y have different lengths"),
        ((np.zeros((4, 2)), np.array([0.0, np.nan, 0.0, 0.0])), ValueError, "validation_data: y contains 1 NaN"),
        ((None, None), ValueError, "validation_data: X is None"),
    ],
)
def test_check_validation_data_names_validation_data(value, error, match):
    with pytest.raises(error, match=match):
        check_validation_data(value)


def test_check_validation_data_returns_float64_tensors():
    Xv, yv = check_validation_data((np.ones((3, 2), dtype=np.float32), [1, 2, 3]))
    assert Xv.shape == (3, 2) and yv.tolist() == [1.0, 2.0, 3.0] and Xv.dtype == yv.dtype == torch.float64


@pytest.mark.parametrize("value", [[4, "a"], [4, None], [[4]], np.array([[4]])])
def test_check_hidden_refuses_widths_that_are_not_numbers_naming_hidden(value):
    with pytest.raises(TypeError, match="hidden must be one or more positive integer widths"):
        check_hidden(value)


def test_an_activation_instance_is_refused_asking_for_the_class():
    with pytest.raises(TypeError, match=r"activation must be .* not a module instance .*pass the class"):
        activation_module(nn.ReLU())
    assert isinstance(activation_module(nn.ReLU), nn.ReLU) and isinstance(activation_module("tanh"), nn.Tanh)
