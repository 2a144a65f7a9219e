"""Constructor arguments refused with an error that names them (the fault sweep's findings)."""

import math

import pytest
import torch

from hidlr import HiDLR
from hidlr.optim.options import check_clip


@pytest.mark.parametrize(
    "value, error",
    [
        (2.0, TypeError),
        ((0.5,), TypeError),
        ((math.nan, 2.0), ValueError),
        ((True, 2.0), TypeError),
        ((0.0, 2.0), ValueError),
        ((2.0, 0.5), ValueError),
    ],
)
def test_bad_first_clip_is_refused_naming_first_clip(value, error):
    model = torch.nn.Linear(2, 1)
    with pytest.raises(error, match=r"first_clip(\[0\])? must"):
        HiDLR(torch.optim.SGD(model.parameters(), lr=0.1), first_clip=value)


def test_check_clip_names_clip_by_default_and_accepts_a_valid_pair():
    with pytest.raises(ValueError, match=r"^clip must"):
        check_clip((2.0, 3.0))
    assert check_clip([0.5, 2]) == (0.5, 2.0)
    assert check_clip((0.25, 4.0), "first_clip") == (0.25, 4.0)
