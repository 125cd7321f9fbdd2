"""End to end as a person: start `tunelab` in tmux, type a prompt, run it, read the screen."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from core.history.store import History
from tests.conftest import REPO


class Tmux:
    def __init__(self, socket: str):
        self.base = ["tmux", "-L", socket]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "e2e")

    def start(self, home, size=("80", "24")) -> None:
        """`tunelab` as the pane's own process (exec), so the pane pid is the app's pid."""
        command = f"cd {REPO} && TUNELAB_HOME={home} HF_HUB_OFFLINE=1 exec {sys.executable} -m tui.launcher"
        self("new-session", "-d", "-s", "e2e", "-x", size[0], "-y", size[1], command)

    def app_pid(self) -> int:
        return int(self("display-message", "-p", "-t", "e2e", "#{pane_pid}").strip())

    def wait_for(self, pattern: str, timeout: float = 90.0) -> str:
        """The screen once `pattern` (a regular expression) is on it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared; screen was:\n{self.screen()}")


@pytest.mark.slow
def test_type_a_prompt_and_read_the_streamed_answer(home, tmp_path):
    assert shutil.which("tmux"), "tmux is needed for the end-to-end test"
    tmux = Tmux(f"tunelab-e2e-{tmp_path.name}")
    tmux.start(home)
    try:
        tmux.wait_for("ready: demo")
        tmux("send-keys", "-t", "e2e", "-l", "Tell me a short story.")
        tmux("send-keys", "-t", "e2e", "C-r")
        screen = tmux.wait_for(r"\d+ tok · \d+ tok/s · [\d.]+s · \w+")  # the final line, not the live one
        assert "Tell me a short story." in screen
        deadline = time.monotonic() + 30
        while not History(home).recent(1):  # saved just after the run ends
            assert time.monotonic() < deadline, "the run never reached history"
            time.sleep(0.1)
        record = History(home).recent(1)[0]
        first_words = " ".join(record["output"].split()[:3])
        assert first_words and first_words in " ".join(screen.split())
        tmux("send-keys", "-t", "e2e", "C-q")
        deadline = time.monotonic() + 30
        while "e2e" in subprocess.run([*tmux.base, "ls"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, "the app did not quit on ctrl+q"
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True)


@pytest.mark.slow
def test_killing_the_tui_leaves_training_running_and_a_new_tunelab_reattaches(home, tmp_path):
    from core.training.runs import Runs

    tmux = Tmux(f"tunelab-e2e-kill-{tmp_path.name}")
    tmux.start(home, ("100", "30"))
    try:
        tmux.wait_for("ready: demo")
        tmux("send-keys", "-t", "e2e", "C-n")
        tmux.wait_for("New LoRA run")
        tmux("send-keys", "-t", "e2e", "Enter")  # the form's defaults: 6 epochs on the demo task
        screen = tmux.wait_for(r"t[0-9a-f]{9} running · step [1-9]")
        run_id = Runs(home).list()[0].id
        assert run_id[:10] in screen
        os.kill(tmux.app_pid(), signal.SIGKILL)  # the TUI dies; the run is in its own session
        subprocess.run([*tmux.base, "kill-server"], capture_output=True)
        runs = Runs(home)
        step = runs.status(run_id).step
        deadline = time.monotonic() + 60
        while runs.status(run_id).step <= step:
            assert runs.status(run_id).state == "running", runs.status(run_id)
            assert time.monotonic() < deadline, "the run stopped moving after the TUI died"
            time.sleep(0.3)
        tmux.start(home, ("100", "30"))  # a new tunelab re-attaches to the live run
        tmux.wait_for(rf"{run_id[:10]} (running|done) · step \d+/\d+")
        runs.cancel(run_id)
        tmux.wait_for(rf"{run_id[:10]} cancelled")
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True)
