"""One verdict cell against another: the items it fixes (passes where the other fails) and breaks, with both
outputs. `o` picks the next cell to compare against; enter on an item shows every cell's output for it."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.evals.grid import Cell
from core.evals.verdict import mcnemar_exact
from core.workbench.verdicts import Comparison
from tui.screens.item_outputs import ItemOutputsScreen

OUTPUT_WIDTH = 28


def cell_output(comparison: Comparison, cell: Cell, item_id: str) -> str:
    """The cell's majority output for the item (seeds: each seed's, joined)."""
    results = (comparison.output(vi, item_id) for vi in cell.variants)
    return " / ".join(result[1] for result in results if result is not None)


class CellItemsScreen(Screen[None]):
    DEFAULT_CSS = """
    CellItemsScreen {
        #cell-box { height: 1fr; padding: 0 1; }
        #cell-title { height: auto; color: $text-muted; }
        #cell-table { height: 1fr; }
    }
    """
    HELP = (
        "The items this cell fixes (✓+, it passes where the other cell fails) and breaks (✗-), against the "
        "cell named in the title: the verdict's other cell first; <cell-next-other> moves to the next. Enter on an item shows "
        "its input, the expected answer and every cell's output."
    )
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="cell-back"),
        Binding("o", "next_other", "Against next cell", id="cell-next-other"),
    ]

    def __init__(self, comparison: Comparison, cell: Cell) -> None:
        super().__init__()
        self.comparison, self.cell = comparison, cell
        self.others = [c for c in comparison.grid.all() if c is not cell and (c.row, c.col) != (cell.row, cell.col)]
        verdict = comparison.verdict
        first = 0
        if verdict is not None:
            wanted = verdict.other if (cell.row, cell.col) == verdict.winner else verdict.winner
            first = next((i for i, c in enumerate(self.others) if (c.row, c.col) == wanted), 0)
        self.other_index = first

    def compose(self) -> ComposeResult:
        with Vertical(id="cell-box"):
            yield Static(id="cell-title")
            yield DataTable(id="cell-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.show()
        self.query_one(DataTable).focus()

    @property
    def other(self) -> Cell | None:
        return self.others[self.other_index] if self.others else None

    def show(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        other = self.other
        if other is None:
            self.query_one("#cell-title", Static).update(Text(f"{self.cell.label}: no other cell to compare with"))
            return
        fixed, broken = self.comparison.grid.diff(self.cell, other)
        p = mcnemar_exact(len(fixed), len(broken))
        self.query_one("#cell-title", Static).update(
            Text(
                f"{self.cell.label}\n  vs {other.label}\n"
                f"fixed {len(fixed)}, broken {len(broken)}, p = {p:.3g} (o: against the next cell)"
            )
        )
        table.add_column("item", key="item", width=10)
        table.add_column("", key="mark", width=2)
        table.add_column("expected", key="expected", width=10)
        table.add_column("this cell", key="this", width=OUTPUT_WIDTH)
        table.add_column("other cell", key="other", width=OUTPUT_WIDTH)
        expected = self.comparison.expected()
        for item_id, mark, style in [*((i, "✓+", "green") for i in fixed), *((i, "✗-", "red") for i in broken)]:
            table.add_row(
                item_id,
                Text(mark, style=style),
                expected.get(item_id, ""),
                cell_output(self.comparison, self.cell, item_id),
                cell_output(self.comparison, other, item_id),
                key=item_id,
            )

    def action_next_other(self) -> None:
        if self.others:
            self.other_index = (self.other_index + 1) % len(self.others)
            self.show()

    @on(DataTable.RowSelected)
    def open_item(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(ItemOutputsScreen(self.comparison, event.row_key.value))
