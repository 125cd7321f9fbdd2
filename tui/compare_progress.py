"""A comparison followed from the TUI: the watcher posts messages (never touches widgets) from its thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.message import Message

from core.training.config import TrainConfig
from core.workbench.compare import CompareWatcher, training_label
from tui.messages import CompareStage, EvalProgress, EvalRow, EvalStarted, RunStarted

if TYPE_CHECKING:
    from core.storage.schemas import GradedRow


class CompareMessages(CompareWatcher):
    """Training runs show in the Training pane (RunStarted) and as one status line with their step; the eval
    fills the Eval matrix, clean, as `ctrl+g` does."""

    def __init__(self, post: Callable[[Message], object], token: str, seeds: int) -> None:
        self.post, self.token, self.seeds = post, token, seeds
        self.stage = ""

    def _say(self, text: str) -> None:
        self.post(CompareStage(self.token, f"{text} · esc cancels"))

    def training(self, config: TrainConfig, index: int, total: int) -> None:
        self.stage = f"{training_label(config, self.seeds)} {index + 1}/{total}"
        self._say(self.stage)

    def started(self, run_id: str) -> None:
        self.post(RunStarted(run_id))

    def step(self, step: int, total: int) -> None:
        if total:
            self._say(f"{self.stage} · step {step}/{total}")

    def evaluating(self, labels: list[str]) -> None:
        self.post(EvalStarted(self.token, labels, clean=True))
        self._say(f"grading {len(labels)} cells")

    def row(self, graded: GradedRow) -> None:
        self.post(EvalRow(self.token, graded))

    def progress(self, done: int, total: int) -> None:
        self.post(EvalProgress(self.token, done, total))
