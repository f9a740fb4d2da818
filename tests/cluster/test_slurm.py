"""The Slurm profile on a real one-node Slurm (tests/cluster/slurm_test.sh), from pytest.

Skipped unless VAD_SLURM_TEST=1: the script installs system packages and starts daemons as root.
CI runs the script directly after pytest (.ci/run).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slurm_test.sh")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("VAD_SLURM_TEST") != "1",
                       reason="set VAD_SLURM_TEST=1 to install and start a one-node Slurm (root, apt-get)"),
]


def test_demo_on_slurm_matches_local_run():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    skipped = [line for line in out.splitlines() if line.startswith("SKIP:")]
    if proc.returncode == 0 and skipped:
        pytest.skip(skipped[-1])
    assert proc.returncode == 0 and "PASS:" in out, out[-6000:]
