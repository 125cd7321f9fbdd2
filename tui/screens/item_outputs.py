"""One eval item across the whole comparison: its input, the expected answer, and every cell's output side
by side (each seed of a LoRA on a line of its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.workbench.verdicts import Comparison

if TYPE_CHECKING:
    from tui.app import TunelabApp


class ItemOutputsScreen(Screen[None]):
    DEFAULT_CSS = """
    ItemOutputsScreen {
        #item-box { height: 1fr; padding: 0 1; }
        #item-title { height: auto; color: $text-muted; }
        #item-table { height: 1fr; }
        #item-input-scroll { height: auto; max-height: 40%; border-bottom: solid $primary 50%; }
    }
    """
    HELP = "One item: its input (as the dataset holds it now), the expected answer, and every cell's output."
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="item-back"),
        Binding("y", "copy", "Copy outputs", id="item-copy"),
    ]

    def __init__(self, comparison: Comparison, item_id: str) -> None:
        super().__init__()
        self.comparison, self.item_id = comparison, item_id

    def compose(self) -> ComposeResult:
        with Vertical(id="item-box"):
            expected = self.comparison.expected().get(self.item_id, "-")
            yield Static(Text(f"item {self.item_id} · expected: {expected}"), id="item-title")
            with VerticalScroll(id="item-input-scroll"):
                yield Static(Text("loading the input…", style="dim"), id="item-input")
            yield DataTable(id="item-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("cell", key="cell", width=34)
        table.add_column("", key="pass", width=2)
        table.add_column("output", key="output")
        for label, passed, output in self.rows():
            mark = Text("✓", style="green") if passed else Text("✗", style="red")
            table.add_row(label, mark, output)
        table.focus()
        self._read_input()

    @work(thread=True, group="item-input", exclusive=True)
    def _read_input(self) -> None:
        """The item's input, read from its dataset off the UI loop."""
        text = cast("TunelabApp", self.app).workbench.verdicts.item_input(self.comparison.summary, self.item_id)
        self.app.call_from_thread(self.show_input, text)

    def rows(self) -> list[tuple[str, bool, str]]:
        """Every variant that graded this item: its label, whether it passed, its output."""
        out = []
        for vi, variant in enumerate(self.comparison.summary.variants):
            result = self.comparison.output(vi, self.item_id)
            if result is not None:
                out.append((variant.label, *result))
        return out

    def show_input(self, text: str) -> None:
        if self.is_attached:  # closed before its input was read: nothing to show it on
            self.query_one("#item-input", Static).update(Text(text))

    def action_copy(self) -> None:
        lines = [f"{label}\t{'pass' if ok else 'fail'}\t{output}" for label, ok, output in self.rows()]
        self.app.copy_to_clipboard("\n".join(lines) + "\n")
        self.notify(f"Copied {len(lines)} outputs.")
