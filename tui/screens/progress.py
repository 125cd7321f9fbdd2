"""A long use case's steps on one progress line of the screen that started it (called from the worker's
thread): what it is doing, then its step or count; the training pane follows each run it starts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from core.workbench.budget import BudgetWatcher
from tui.messages import RunStarted

if TYPE_CHECKING:
    from textual.app import App

    from tui.app import TunelabApp


class LineProgress(BudgetWatcher):
    """A comparison's (or a curve's) watcher that says each step with `show` on the UI thread until `cancel`."""

    def __init__(self, app: App, cancel: threading.Event, show: Callable[[str], None]) -> None:
        self.app, self.cancel, self.show, self.what = app, cancel, show, ""
        self.size = ""  # a curve's stage: the size each line is for

    def _say(self, text: str) -> None:
        if not self.cancel.is_set():
            self.app.call_from_thread(self.show, text)

    def phase(self, text: str) -> None:
        self.what = text
        self._say(text)

    def stage(self, what: str, size: int) -> None:
        self.size = f"{size} rows: "
        self.phase(f"{self.size}{'prompt candidates' if what == 'prompts' else what}")

    def started(self, run_id: str) -> None:
        cast("TunelabApp", self.app).main.post_message(RunStarted(run_id))  # the training pane follows it

    def step(self, step: int, total: int) -> None:
        self._say(f"{self.what} · step {step}/{total or '?'}")

    def evaluating(self, labels: list[str]) -> None:
        self.phase(f"{self.size}grading {len(labels)} cells")

    def progress(self, done: int, total: int) -> None:
        self._say(f"{self.what} · {done}/{total}")

    def failed(self, error: Exception) -> None:
        """The use case ended on an error: the line cleared and the error said, unless it was stopped (its
        screen may be gone)."""
        if not self.cancel.is_set():
            self.app.call_from_thread(self.show, "")
            self.app.notify(str(error), severity="error", timeout=8)
