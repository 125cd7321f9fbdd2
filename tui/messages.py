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
