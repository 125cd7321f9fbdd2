"""'All cores' is the cores a process may run on (its affinity), never more threads than it can use."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_a_process_kept_to_one_core_counts_one():
    script = (
        "import os\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from core.engine.cores import usable_cores\n"
        "print(usable_cores())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
