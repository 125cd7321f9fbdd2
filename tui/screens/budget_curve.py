"""The data-budget curve (`tunelab compare --budget ... --train`): pass rate against labelled rows on a log axis
for the best k-shot prompt, the LoRA and both, each with its 95% interval; a row per size below, and the sentence
that says where the LoRA overtakes prompting. The newest curve kept in the data dir; the chart is the CLI's
layout (core/evals/budget_chart.py), each arm in its colour. Opened from a verdict, `r` runs a new curve on
its dataset and first prompt (`core.workbench.budget`), its progress on a line, the new curve shown at the end."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.evals.plan import EvalRequest
from tui.screens.curve_form import CurveForm
from tui.screens.progress import LineProgress

if TYPE_CHECKING:
    from core.evals.budget_curve import Curve
    from tui.app import TunelabApp

STYLES = {"prompt": "bold cyan", "lora": "bold magenta", "both": "bold yellow", "axis": "dim"}
NONE_YET = "No data-budget curve yet: tunelab compare --budget 16,64,all --train draws one."
NONE_HERE = "No data-budget curve yet: r runs one on this verdict's dataset and first prompt."


@dataclass(frozen=True)
class CurveSource:
    """What `r` runs a curve on: a verdict's rows, its model and its first prompt column (a stored prompt id)."""

    request: EvalRequest
    options: ModelOptions
    prompt_id: str


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
        #budget-progress { height: auto; color: $accent; display: none; }
    }
    """
    HELP = (
        "The data-budget curve: at each size of nested subsets of the training rows (log axis), P the best k-shot "
        "prompt drawn on those rows alone (picked on the dev rows), L a LoRA trained on them alone, B that LoRA with "
        "the best prompt; each bar its 95% interval. The p-value tests the prompt against the LoRA item by item, "
        "adjusted for keeping each size's best prompt and for every size compared (* a real difference). Opened "
        "from a verdict, <budget-run> runs a new curve on its dataset and first prompt, asking the sizes, seeds and epochs; esc stops it."
    )
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Close", id="budget-close"),
        Binding("r", "run_curve", "Run a curve", id="budget-run", show=False),  # in help and the palette
    ]

    def __init__(self, curve: Curve | None, source: CurveSource | None = None) -> None:
        super().__init__()
        self.curve, self.source = curve, source
        self.cancel = threading.Event()  # the curve in flight stops when the screen closes

    @property
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    def compose(self) -> ComposeResult:
        curve = self.curve
        with Vertical(id="budget-box"):
            if curve is None:
                yield Static(Text("Data-budget curve · none yet"), id="budget-title")
                yield Static(Text(NONE_HERE), id="budget-sentence")
            else:
                items = curve.points[-1].n_items if curve.points else 0
                yield Static(
                    Text(
                        f"Data-budget curve · {curve.dataset}:{curve.split} · {items} items · {curve.created_at[:19]}"
                    ),
                    id="budget-title",
                )
                yield BudgetChart(curve, id="budget-chart")
                yield DataTable(id="budget-table", cursor_type="row", zebra_stripes=True)
                yield Static(Text(curve.sentence), id="budget-sentence")
            yield Static("", id="budget-progress")
        yield Footer()

    def on_unmount(self) -> None:
        self.cancel.set()

    def on_mount(self) -> None:
        from core.evals.budget_chart import COLUMNS, curve_table

        if self.curve is None:
            return
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        for row in curve_table(self.curve):
            table.add_row(*row)
        table.focus()

    def action_run_curve(self) -> None:
        source = self.source
        if source is None:
            self.notify(
                "A curve runs on a verdict's rows: press c on a verdict with a prompt column.", severity="warning"
            )
            return
        if self.query_one("#budget-progress").display:
            self.notify("A curve is running; esc stops it.", severity="warning")
            return

        def go(settings: dict | None) -> None:
            if settings is not None:
                self.show_progress("planning")
                self._run_curve(source, settings)

        self.app.push_screen(CurveForm(), go)

    @work(thread=True, group="budget-run", exclusive=True)
    def _run_curve(self, source: CurveSource, settings: dict) -> None:
        """The plan (checked before anything runs), then the curve; the screen redrawn with it."""
        from core.workbench.budget import budget_plan, run_budget
        from core.workbench.service import PromptRef

        workbench = self.tunelab.workbench
        watcher = LineProgress(self.app, self.cancel, self.show_progress)
        try:
            row, version = workbench.prompts.get(source.prompt_id)
            plan = budget_plan(
                workbench, source.request, source.options, PromptRef(row["name"], version), settings["sizes"],
                seeds=settings["seeds"], train_settings={"epochs": settings["epochs"]},
            )  # fmt: skip
            curve = run_budget(workbench, plan, self.tunelab.local_engine, watcher, self.cancel)
        except (OSError, TunelabError) as exc:
            watcher.failed(exc)
            return
        if not self.cancel.is_set():
            self.app.call_from_thread(self.show_curve, curve)

    def show_curve(self, curve: Curve) -> None:
        """The new curve on a screen of its own in this one's place (its `r` runs another)."""
        self.app.switch_screen(BudgetCurveScreen(curve, self.source))
        self.notify(curve.sentence, timeout=12)

    def show_progress(self, text: str) -> None:
        if self.cancel.is_set():
            return
        shown = self.query_one("#budget-progress", Static)
        shown.update(Text(f"Data-budget curve · {text} · esc stops it" if text else ""))
        shown.display = bool(text)


def open_budget_curve(app: App, root: Path, source: CurveSource | None = None) -> None:
    """The newest curve in the data dir `root` on its screen, read off the UI loop; with none, a notice, or
    from a verdict (`source`) the empty screen whose `r` runs one."""

    def load() -> None:
        from core.workbench.budget import last_curve

        try:
            curve = last_curve(root)
        except (OSError, TunelabError) as exc:
            app.call_from_thread(app.notify, str(exc), severity="error", timeout=8)
            return
        if curve is None and source is None:
            app.call_from_thread(app.notify, NONE_YET, severity="warning")
            return
        app.call_from_thread(app.push_screen, BudgetCurveScreen(curve, source))

    app.run_worker(load, thread=True, group="budget-curve", exclusive=True)
