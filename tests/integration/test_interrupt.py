"""ctrl+c anywhere in the CLI is one line and exit 130: while it starts, while the model loads, mid-stream."""

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def gen(home) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui.launcher",
            "gen",
            "Anna was a",
            "--max-new-tokens",
            "4000",
            "--min-new-tokens",
            "4000",
        ],
        cwd=REPO,
        env=subprocess_env(TUNELAB_HOME=str(home), HF_HUB_OFFLINE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's ctrl+c reaches it
    )


def interrupted(proc: subprocess.Popen) -> list[str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("after", [0.15, 0.3, 1.0, 2.0])
def test_ctrl_c_while_starting_or_loading_is_one_line_and_130(home, after):
    proc = gen(home)
    time.sleep(after)  # wherever it lands: imports, the parser, the model load, or the first tokens
    assert len(interrupted(proc)) == 1


def test_ctrl_c_mid_stream_keeps_what_streamed_and_says_so_in_one_line(home):
    proc = gen(home)
    assert proc.stdout.read(20)  # tokens are arriving
    lines = interrupted(proc)
    assert len(lines) == 1 and "stop: cancelled" in lines[0]
