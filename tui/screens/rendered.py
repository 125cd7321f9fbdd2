"""The exact string the model will see, whitespace and special tokens included."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea


class RenderedScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    RenderedScreen {
        align: center middle;
        #rendered-box { width: 90%; height: 85%; border: round $primary; background: $surface; padding: 0 1; }
        #rendered-text { height: 1fr; }
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="close-rendered"),
        Binding("y", "copy", "Copy", id="copy-rendered"),
    ]

    def __init__(self, text: str, tokens: int, note: str = "") -> None:
        super().__init__()
        self.text, self.tokens, self.note = text, tokens, note

    def compose(self) -> ComposeResult:
        with Vertical(id="rendered-box"):
            yield Label(f"Rendered prompt: {self.tokens} tokens, exactly as sent (esc closes)")
            if self.note:
                yield Label(f"note: {self.note}", id="rendered-note")
            yield TextArea(self.text, id="rendered-text", read_only=True, soft_wrap=True, show_line_numbers=True)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"Copied the rendered prompt ({len(self.text)} characters).")
