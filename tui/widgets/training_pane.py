"""The training-monitor pane: live runs and loss curves (training control arrives with its issue)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class TrainingPane(Vertical):
    BORDER_TITLE = "Training"

    def compose(self) -> ComposeResult:
        yield Static("No training run yet.", id="training-status")
