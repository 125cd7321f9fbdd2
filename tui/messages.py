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


class HistoryPage(Message):
    """Rows found by the history search `token` (appended when paging), or why the query is bad."""

    def __init__(self, token: int, rows: list[dict[str, Any]], cursor: Any, *, append: bool = False,
                 error: str | None = None, problems: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.token, self.rows, self.cursor, self.append = token, rows, cursor, append
        self.error, self.problems = error, problems


class HistoryRecord(Message):
    """The full record behind the highlighted history row (or None when it vanished)."""

    def __init__(self, record: dict[str, Any] | None, extra: str = "") -> None:
        super().__init__()
        self.record, self.extra = record, extra
