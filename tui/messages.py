"""Messages that carry model-worker events from the client's reader thread into the app."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ModelEvent(Message):
    """One event from the model worker (`ready`, `chunk`, `done`, ...), posted thread-safely."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    @property
    def kind(self) -> str:
        return self.event.get("event", "")


class EvalRow(Message):
    """One graded (variant, item) result of the eval run `token`."""

    def __init__(self, token: str, row: dict[str, Any]) -> None:
        super().__init__()
        self.token, self.row = token, row


class EvalProgress(Message):
    def __init__(self, token: str, done: int, total: int) -> None:
        super().__init__()
        self.token, self.done, self.total = token, done, total


class EvalFinished(Message):
    """The eval run `token` ended: its summary and the pinned baseline, or an error."""

    def __init__(self, token: str, summary: dict[str, Any] | None, *, error: str | None = None,
                 baseline: tuple[dict[str, Any], int] | None = None) -> None:
        super().__init__()
        self.token, self.summary, self.error, self.baseline = token, summary, error, baseline


class Rendered(Message):
    """The worker's answer to a render request: the exact prompt string, or an error."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event
