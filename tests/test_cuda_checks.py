"""The device checks of ``benchmarks/cuda/checks.py``: each one on the CPU here, and on CUDA too
where a GPU is present (the CPU-only CI skips those; run the script itself on a GPU machine)."""

import pytest
import torch

from tests.scripts import load_script

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
checks = load_script("cuda", "checks")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [name for name, _ in checks.CHECKS])
def test_check_passes(name, device):
    if name == "host_syncs_per_step" and device == "cpu":
        pytest.skip("counts CUDA synchronisations")
    dict(checks.CHECKS)[name](device)  # raises checks.Failed (or the library's error) when it does not
