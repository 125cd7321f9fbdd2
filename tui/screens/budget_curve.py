"""The data-budget curve (`tunelab compare --budget ... --train`): pass rate against labelled rows on a log axis
for the best k-shot prompt, the LoRA and both, each with its 95% interval; a row per size below, and the sentence
that says where the LoRA overtakes prompting. The newest curve kept in the data dir; the chart is the CLI's
layout (core/evals/budget_chart.py), each arm in its colour."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from core.errors import TunelabError

if TYPE_CHECKING:
    from core.evals.budget_curve import Curve

STYLES = {"prompt": "bold cyan", "lora": "bold magenta", "both": "bold yellow", "axis": "dim"}
NONE_YET = "No data-budget curve yet: tunelab compare --budget 16,64,all --train draws one."


class BudgetChart(Widget):
    """The chart at the widget's size, re-laid out on a resize (the layout is the CLI's)."""

    DEFAULT_CSS = "BudgetChart { height: 1fr; min-height: 12; }"

    def __init__(self, curve: Curve, **kwargs) -> None:
        super().__init__(**kwargs)
        self.curve = curve

    def render(self) -> Text:
        from core.evals.budget_chart import chart_cells

        text = Text()
        lines = chart_cells(self.curve.points, self.size.width, max(5, self.size.height - 4))
        for n, line in enumerate(lines):
            for char, what in line:
                text.append(char, style=STYLES.get(what, ""))
            if n < len(lines) - 1:
                text.append("\n")
        return text


class BudgetCurveScreen(Screen[None]):
    DEFAULT_CSS = """
    BudgetCurveScreen {
        #budget-box { height: 1fr; padding: 0 1; }
        #budget-title { height: auto; color: $text-muted; }
        #budget-table { height: auto; max-height: 40%; }
        #budget-sentence { height: auto; text-style: bold; margin: 1 0 0 0; }
    }
    """
    HELP = (
        "The data-budget curve: at each size of nested subsets of the training rows (log axis), P the best k-shot "
        "prompt drawn on those rows alone (picked on the dev rows), L a LoRA trained on them alone, B that LoRA with "
        "the best prompt; each bar its 95% interval. The p-value tests the prompt against the LoRA item by item, "
        "adjusted for keeping each size's best prompt and for every size compared (* a real difference)."
    )
    BINDINGS = [Binding("escape", "app.pop_screen", "Close", id="budget-close")]

    def __init__(self, curve: Curve) -> None:
        super().__init__()
        self.curve = curve

    def compose(self) -> ComposeResult:
        curve = self.curve
        items = curve.points[-1].n_items if curve.points else 0
        with Vertical(id="budget-box"):
            yield Static(
                Text(f"Data-budget curve · {curve.dataset}:{curve.split} · {items} items · {curve.created_at[:19]}"),
                id="budget-title",
            )
            yield BudgetChart(curve, id="budget-chart")
            yield DataTable(id="budget-table", cursor_type="row", zebra_stripes=True)
            yield Static(Text(curve.sentence), id="budget-sentence")
        yield Footer()

    def on_mount(self) -> None:
        from core.evals.budget_chart import COLUMNS, curve_table

        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        for row in curve_table(self.curve):
            table.add_row(*row)
        table.focus()


def open_budget_curve(app: App, root: Path) -> None:
    """The newest curve in the data dir `root` on its screen, read off the UI loop; a notice when there is none."""

    def load() -> None:
        from core.workbench.budget import last_curve

        try:
            curve = last_curve(root)
        except (OSError, TunelabError) as exc:
            app.call_from_thread(app.notify, str(exc), severity="error", timeout=8)
            return
        if curve is None:
            app.call_from_thread(app.notify, NONE_YET, severity="warning")
            return
        app.call_from_thread(app.push_screen, BudgetCurveScreen(curve))

    app.run_worker(load, thread=True, group="budget-curve", exclusive=True)
