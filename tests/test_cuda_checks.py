"""The device checks of ``benchmarks/cuda/checks.py``: each one on the CPU here, and on CUDA too
where a GPU is present (the CPU-only CI skips those; run the script itself on a GPU machine)."""

import pytest
import torch

from tests.scripts import load_script

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
checks = load_script("cuda", "checks")  # imports the check modules, which register their checks


CHECKS = {name: (fn, cuda_only) for name, fn, cuda_only in checks.CHECKS}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CHECKS))
def test_check_passes(name, device):
    fn, cuda_only = CHECKS[name]
    if cuda_only and device == "cpu":
        pytest.skip("compares the device with the CPU or counts CUDA synchronisations")
    fn(device)  # raises Failed (or the library's error) when it does not
