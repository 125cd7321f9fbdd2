"""The results pane: streamed output appended in place, follows the end only if already there."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TextArea


class ResultsPane(Vertical):
    BORDER_TITLE = "Results"

    def compose(self) -> ComposeResult:
        yield TextArea(id="output", read_only=True, soft_wrap=True, show_line_numbers=False)
        yield Static("", id="result-stats")

    @property
    def output(self) -> TextArea:
        return self.query_one("#output", TextArea)

    def set_status(self, text: str, *, error: bool = False) -> None:
        stats = self.query_one("#result-stats", Static)
        stats.set_class(error, "error")
        stats.update(text)

    def begin(self) -> None:
        self.output.text = ""
        self.set_status("generating… (esc cancels)")

    def progress(self, tokens: int, elapsed: float) -> None:
        rate = f" · {tokens / elapsed:.0f} tok/s" if elapsed > 0 else ""
        self.set_status(f"{tokens} tok{rate} · esc cancels")

    def append(self, text: str) -> None:
        """One call per coalesced chunk: insert at the end without re-rendering the whole text."""
        out = self.output
        follow = out.scroll_y >= out.max_scroll_y
        out.insert(text, out.document.end, maintain_selection_offset=False)
        if follow:
            out.scroll_end(animate=False)

    def finish(self, result: dict[str, Any]) -> None:
        self.set_status(
            f"{result['completion_tokens']} tok · {result['tok_per_s']:.0f} tok/s · "
            f"{result['latency_s']:.2f}s · {result['stop_reason']}")
