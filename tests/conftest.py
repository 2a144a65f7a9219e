"""The models in the tests are tiny: one intra-op thread per test process is fastest, and avoids
oversubscribing the cores when the suite runs under pytest-xdist."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
