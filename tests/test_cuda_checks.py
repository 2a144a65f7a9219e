"""The device checks of ``benchmarks/cuda/checks.py``: each one on the CPU here, and on CUDA too
where a GPU is present (the CPU-only CI skips those; run the script itself on a GPU machine)."""

import importlib
import sys
from pathlib import Path

import pytest
import torch

CHECKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "cuda"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def _load():
    sys.path.insert(0, str(CHECKS_DIR))
    try:
        return importlib.import_module("checks")
    finally:
        sys.path.remove(str(CHECKS_DIR))


checks = _load()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [name for name, _ in checks.CHECKS])
def test_check_passes(name, device):
    if name == "host_syncs_per_step" and device == "cpu":
        pytest.skip("counts CUDA synchronisations")
    dict(checks.CHECKS)[name](device)  # raises checks.Failed (or the library's error) when it does not
