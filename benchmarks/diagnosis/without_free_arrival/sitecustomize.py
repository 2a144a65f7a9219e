"""Round 26 of ``docs/diagnosis.md``: every Python process started with this folder on
``PYTHONPATH`` (the benchmark's spawned workers too) runs Hi-DLR without round 20's free refreshes
before the rates first arrive (``schedule.arrival_is_free`` always False), as the engine was
before 8dff1f8.

    PYTHONPATH=benchmarks/diagnosis/without_free_arrival .venv/bin/hidlr bench uci --sets yacht \\
        --models mdn --optimizers hidlr --workers 2 --out /tmp/off
"""

import hidlr.optim.schedule as schedule

schedule.arrival_is_free = lambda config, refreshes, forwards: False
