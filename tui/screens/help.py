"""F1: what the focused pane is for and every key that works there now (with the user's keymap)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        #help-box { width: 90%; max-width: 110; height: 80%; border: round $primary; background: $surface; padding: 0 1; }
    }
    """
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="close-help")]

    def __init__(self, title: str, about: str, keys: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text, self.about, self.keys = title, about, keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2, 0, 0), show_header=True, header_style="bold")
        table.add_column("key")
        table.add_column("does")
        table.add_column(Text("id (remap in config.toml [keys])"), style="dim")
        for key, description, binding_id in self.keys:
            table.add_row(Text(key), Text(description), Text(binding_id))
        with Vertical(id="help-box"):
            yield Label(f"{self.title_text} · esc closes")
            with VerticalScroll():
                yield Static(Text(self.about + "\n"), id="help-about")
                yield Static(table, id="help-keys")
