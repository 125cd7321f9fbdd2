"""A small modal that asks for one value (a tag list, a note, a path, a corrected output)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, TextArea

from tui.key_order import in_key_order


class AskScreen(ModalScreen[str | None]):
    """Enter (or ctrl+r in the multi-line form) answers; esc dismisses with None."""

    DEFAULT_CSS = """
    AskScreen {
        align: center middle;
        #ask-box { width: 70; height: auto; border: round $primary; background: $surface; padding: 0 1; }
        #ask-box.-multiline { width: 90%; height: 70%; }
        #ask-text { height: 1fr; }
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel", id="ask-cancel"),
        Binding("ctrl+r", "submit", "Save", id="ask-submit", priority=True),
    ]

    def __init__(self, question: str, value: str = "", *, multiline: bool = False) -> None:
        super().__init__()
        self.question, self.value, self.multiline = question, value, multiline

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box", classes="-multiline" if self.multiline else ""):
            hint = "ctrl+r saves" if self.multiline else "enter saves"
            yield Label(f"{self.question} ({hint}, esc cancels)")
            if self.multiline:
                yield TextArea(self.value, id="ask-text", soft_wrap=True, show_line_numbers=False)
            else:
                yield Input(self.value, id="ask-input")

    def on_mount(self) -> None:
        self.query_one("#ask-text" if self.multiline else "#ask-input").focus()

    @on(Input.Submitted, "#ask-input")
    @in_key_order
    def action_submit(self) -> None:
        if self.multiline:
            self.dismiss(self.query_one("#ask-text", TextArea).text)
        else:
            self.dismiss(self.query_one("#ask-input", Input).value)
