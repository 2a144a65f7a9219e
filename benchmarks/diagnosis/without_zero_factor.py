"""The ``hidlr`` command with the rule of round 25 of ``docs/diagnosis.md`` switched off: no run
begins in a growth phase because a weight matrix starts at zero (``has_zero_factor`` always False).
Arguments as for ``hidlr``; compare the runs with ``same_runs.py``.

    .venv/bin/python benchmarks/diagnosis/without_zero_factor.py bench lr --store /tmp/off --part a \
        --workloads digits-lora --methods hidlr-diag --seeds 5 --no-progress
"""

from __future__ import annotations

import sys

import hidlr.optim.refresh as refresh
from hidlr.cli import app

refresh.has_zero_factor = lambda params: False

if __name__ == "__main__":
    sys.argv[0] = "hidlr"
    app()
