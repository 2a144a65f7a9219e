"""The frameworks stay optional: importing hidlr imports neither Lightning nor Transformers."""

import subprocess
import sys


def test_import_hidlr_does_not_import_the_frameworks():
    code = (
        "import sys, hidlr, hidlr.integrations; "
        "print(sorted(m for m in ('lightning', 'transformers', 'accelerate', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
