"""Versions of one prompt, newest first, with a diff between any two (space marks A, cursor is B)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from core.data.prompts import PromptStore


class VersionsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    VersionsScreen {
        align: center middle;
        #versions-box { width: 90%; height: 85%; border: round $primary; background: $surface; padding: 0 1; }
        #versions-list { height: 8; }
        #diff-scroll { height: 1fr; }
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="close-versions"),
        Binding("space", "mark", "Mark A", id="mark-version"),
    ]

    def __init__(self, store: PromptStore, name: str) -> None:
        super().__init__()
        self.store, self.prompt_name = store, name
        self.rows: list[dict[str, Any]] = store.versions(name)
        self.marked = 0  # A: the newest until another is marked

    def compose(self) -> ComposeResult:
        with Vertical(id="versions-box"):
            yield Label(f"Versions of '{self.prompt_name}': space marks A, the cursor is B, esc closes")
            yield OptionList(*[Option(self._line(i), id=r["id"]) for i, r in enumerate(self.rows)], id="versions-list")
            with VerticalScroll(id="diff-scroll"):
                yield Static(id="diff")

    def _line(self, index: int) -> Text:
        """One version; the one marked A says so in the first column."""
        row = self.rows[index]
        text = (
            f"@{row['number']}  {row['id'][:8]}  {row['created_at'][11:19]}  {' '.join(row['template'].split())[:40]}"
        )
        mark = ("A ", "bold reverse") if index == self.marked else ("  ", "")
        return Text.assemble(mark, " ", text)

    def on_mount(self) -> None:
        if not self.rows:
            self.query_one("#diff", Static).update("No saved versions yet: each run saves one.")
        self.show_diff()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show_diff()

    def action_mark(self) -> None:
        options = self.query_one(OptionList)
        before, self.marked = self.marked, options.highlighted or 0
        for index in {before, self.marked}:
            options.replace_option_prompt_at_index(index, self._line(index))
        self.show_diff()

    def show_diff(self) -> None:
        if not self.rows:
            return
        b = self.query_one(OptionList).highlighted or 0
        a_row, b_row = self.rows[self.marked], self.rows[b]
        if a_row["id"] == b_row["id"]:
            self.query_one("#diff", Static).update(f"A = B = @{a_row['number']}: move the cursor to compare.")
            return
        diff = self.store.diff(a_row["id"], b_row["id"])
        text = Text()
        for line in diff.splitlines():
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "dim"
                if line.startswith("@@")
                else ""
            )
            text.append(line + "\n", style=style)
        self.query_one("#diff", Static).update(text)
