"""The command line's watchdog over in-process generation: the same pace the model worker's client holds
its worker to (`core.engine.client`)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from tui.cli.output import say


class Pace:
    """A watchdog over an in-process generation: from the model's load, the first token is due
    within a deadline derived from the prompt's size (as the model worker's client allows), each next one
    within HANG_S. A generation stuck past it ends the command with one line and exit code 3."""

    def __init__(self, prompt_chars: int, step_tokens: int = 0) -> None:
        """`step_tokens`: the tokens one step between answers may take (an eval's batch), beyond HANG_S."""
        from core.engine.client import HANG_S, per_token_s
        from core.faults import fault_int

        self.hang = float(fault_int("worker_hang_s") or HANG_S)
        self.step = self.hang + step_tokens * per_token_s()
        self.allowed = self.step + prompt_chars // 3 * per_token_s()
        self.since: float | None = None  # None while the model loads: a download has no pace
        self.ended = threading.Event()  # the work is over: nothing is late any more

    def start(self) -> None:
        self.since = time.monotonic()

    def beat(self, *_: object) -> None:
        self.since, self.allowed = time.monotonic(), self.step

    def late(self) -> float | None:
        """Seconds without an answer, once past the allowance; else None."""
        if self.ended.is_set() or self.since is None or (waited := time.monotonic() - self.since) <= self.allowed:
            return None
        return waited

    def end(self) -> None:
        self.ended.set()

    def watch(self, stuck: Callable[[float], object]) -> None:
        """Call `stuck(seconds)` from a watching thread once the work is late (for work on the main thread)."""

        def run() -> None:
            while (waited := self.late()) is None:
                if self.ended.wait(0.5):
                    return  # the work ended in time
            stuck(waited)

        threading.Thread(target=run, daemon=True, name="cli-watchdog").start()


def stuck_exit(seconds: float) -> None:
    """End the command now, one line and exit code 3: the work stuck on the main thread cannot be asked to
    stop (an eval's plan and graded rows stay on disk: the next start recovers it as interrupted)."""
    say(f"tunelab: error: the model has not answered for {seconds:.0f} s (stuck in a library call?); stopped")
    sys.stdout.flush()
    os._exit(3)
