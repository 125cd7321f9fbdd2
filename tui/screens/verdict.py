"""The verdict: prompt, LoRA, or both? One grid (a row per model variant, a column per prompt), the sentence
that says which cell wins and whether it is real, the notes, and what each approach costs.

Enter on a cell lists the items it fixes and breaks against another cell; `t` trains a LoRA on the prompt a
cell used it with when it was trained on something else; `w` writes the report to share; `b` runs p->w->p
from a cell's prompt (`core.workbench.together`) and `d` distills a column's prompt into a LoRA, each opening
the verdict with its rows.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.errors import TunelabError
from core.evals.report import costs, rate_text, usage_text
from core.workbench.verdicts import Comparison, Foreign
from tui.messages import FinalLook, RunStarted, VerdictReady
from tui.screens.ask import AskScreen
from tui.screens.cell_items import CellItemsScreen
from tui.screens.progress import LineProgress

if TYPE_CHECKING:
    from tui.app import TunelabApp

LABEL_WIDTH = 24  # the model-variant column; the full label is in the notes below
CELL_WIDTH = 18


class VerdictScreen(Screen[None]):
    DEFAULT_CSS = """
    VerdictScreen {
        #verdict-box { height: 1fr; padding: 0 1; }
        #verdict-title { height: auto; color: $text-muted; }
        #verdict-grid { height: auto; max-height: 70%; }
        #verdict-sentence { height: auto; text-style: bold; margin: 1 0 0 0; }
        #verdict-notes { height: 1fr; min-height: 3; color: $text-muted; }
        #verdict-progress { height: auto; color: $accent; display: none; }
    }
    """
    HELP = (
        "The verdict: one row per model variant (the base, each LoRA and what it was trained on), one column "
        "per prompt (name@id and mode). Each cell: pass rate, 95% interval (± the spread across seeds), mean "
        "latency, prompt+completion tokens. ★ marks the winner, ○ the cell it is tested against (exact McNemar "
        "on the same items), ! a LoRA used with a prompt it was not trained with. Enter on a cell lists the "
        "items it fixes and breaks; <verdict-train> trains a LoRA on that cell's prompt; <verdict-report> writes the "
        "report; <verdict-final> judges these cells once on the sealed test split; <verdict-both> runs p->w->p from "
        "the cell's prompt (optimize it, train a LoRA with it on its passing outputs, optimize it again on that "
        "LoRA) and shows the p->w and p->w->p rows; <verdict-distill> trains a LoRA on the passing outputs of the "
        "prompt under the cursor, from the input alone, and grades it with no prompt beside the prompt; esc stops "
        "either; <verdict-budget> shows the last data-budget "
        "curve (compare --budget), where <budget-run> runs one."
    )
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Close", id="verdict-close"),
        Binding("t", "train_on_prompt", "Train on prompt", id="verdict-train"),
        Binding("w", "write_report", "Report", id="verdict-report"),
        Binding("f", "final", "Final", id="verdict-final"),  # on the sealed test split
        Binding("b", "both_together", "Both together (p->w->p)", id="verdict-both", show=False),
        Binding("d", "distill", "Distill this prompt", id="verdict-distill", show=False),
        Binding("c", "budget_curve", "Budget curve", id="verdict-budget", show=False),  # in help and the palette
    ]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison
        self.cancel = threading.Event()  # the p->w->p or distillation in flight stops when the screen closes
        self.running = "Both together"  # what the progress line is for

    @property
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    def compose(self) -> ComposeResult:
        summary = self.comparison.summary
        with Vertical(id="verdict-box"):
            yield Static(
                Text(
                    f"Verdict · eval {summary.id} · {summary.scope} · {summary.n_items} items · grader {summary.grader}"
                ),
                id="verdict-title",
            )
            yield DataTable(id="verdict-grid", cursor_type="cell", zebra_stripes=True)
            verdict = self.comparison.verdict
            yield Static(Text(verdict.sentence if verdict else self.comparison.why_none), id="verdict-sentence")
            yield Static("", id="verdict-progress")
            with VerticalScroll(id="verdict-notes"):
                yield Static(self._notes(), id="verdict-notes-text")
        yield Footer()

    def on_mount(self) -> None:
        self._fill(self.app.size.width)
        verdict = self.comparison.verdict
        if verdict is not None:
            self.query_one(DataTable).move_cursor(row=verdict.winner[0], column=verdict.winner[1] + 1)
        self.query_one(DataTable).focus()

    def on_unmount(self) -> None:
        self.cancel.set()

    def on_resize(self, event: events.Resize) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_coordinate
        self._fill(event.size.width)
        table.cursor_coordinate = cursor

    def _fill(self, width: int) -> None:
        """The grid at this width: labels abbreviated at 80 columns (the notes hold them whole) and whole when
        the screen has room; the label column stays put while the cells scroll sideways."""
        grid = self.comparison.grid
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.fixed_columns = 1
        cells = [max(CELL_WIDTH, min(len(col.label), 30)) for col in grid.cols]
        room = width - 4 - sum(w + 2 for w in cells)  # cell padding, borders
        label_width = max(LABEL_WIDTH, min(max((len(r.label) for r in grid.rows), default=0), room))
        table.add_column("model variant", key="row", width=label_width)
        for c, col in enumerate(grid.cols):
            table.add_column(col.label, key=str(c), width=cells[c])
        for r, row in enumerate(grid.rows):
            label = row.label if len(row.label) <= label_width else row.label[: label_width - 1] + "…"
            table.add_row(Text(label), *(self._cell_text(r, c) for c in range(len(grid.cols))), key=str(r), height=2)

    def _marks(self, r: int, c: int) -> str:
        verdict = self.comparison.verdict
        mark = ""
        if verdict is not None and (r, c) == verdict.winner:
            mark = "★"
        elif verdict is not None and (r, c) == verdict.other:
            mark = "○"
        if self._foreign(r, c) is not None:
            mark += "!"
        return mark

    def _cell_text(self, r: int, c: int) -> Text:
        cell = self.comparison.grid.cell(r, c)
        if cell is None:
            return Text("-", style="dim")
        mark = self._marks(r, c)
        style = "bold green" if mark.startswith("★") else ""
        return Text.assemble((f"{mark}{' ' if mark else ''}{rate_text(cell)}", style), "\n", (usage_text(cell), "dim"))

    def _foreign(self, r: int, c: int) -> Foreign | None:
        cell = self.comparison.grid.cell(r, c)
        if cell is None:
            return None
        labels = {self.comparison.summary.variants[vi].label for vi in cell.variants}
        return next((f for f in self.comparison.foreign if f.label in labels), None)

    def _notes(self) -> Text:
        grid = self.comparison.grid
        lines = [f"note: {w}" for w in self.comparison.warnings]
        lines += costs(grid)
        return Text("\n".join(lines))

    def _selected(self) -> tuple[int, int] | None:
        table = self.query_one(DataTable)
        r, c = table.cursor_row, table.cursor_column - 1
        return (r, c) if c >= 0 and self.comparison.grid.cell(r, c) is not None else None

    @on(DataTable.CellSelected)
    def open_cell(self) -> None:
        selected = self._selected()
        if selected is None:
            self.notify("Move to a cell to list its items.", severity="warning")
            return
        cell = self.comparison.grid.cell(*selected)
        assert cell is not None
        self.app.push_screen(CellItemsScreen(self.comparison, cell))

    def action_train_on_prompt(self) -> None:
        selected = self._selected()
        foreign = self._foreign(*selected) if selected else None
        if foreign is None or foreign.prompt_id is None:
            self.notify("t works on a cell marked !: a LoRA used with a prompt it was not trained with.")
            return
        self._train_on_prompt(foreign.adapter, str(foreign.prompt_id))

    @work(thread=True, group="train-start", exclusive=True)
    def _train_on_prompt(self, adapter: str, prompt_id: str) -> None:
        try:
            run_id = self.tunelab.workbench.train_on_prompt(adapter, prompt_id)
        except (OSError, TunelabError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.tunelab.main.post_message(RunStarted(run_id))  # the training pane follows it

    def action_budget_curve(self) -> None:
        """The newest curve; `r` there runs one on this verdict's rows, base model and first prompt column."""
        from dataclasses import replace

        from core.evals.plan import EvalRequest
        from tui.screens.budget_curve import CurveSource, open_budget_curve

        col = next((c for c in self.comparison.grid.cols if c.key), None)
        options = replace(self.tunelab.options, model=self.comparison.grid.rows[0].model, adapter=None)
        source = CurveSource(EvalRequest.of(self.comparison.summary), options, col.key) if col and col.key else None
        open_budget_curve(self.app, self.tunelab.root, source)

    def action_final(self) -> None:
        """These cells once on the sealed test split: the answer iteration on the dev rows cannot give."""
        from core.data.datasets import SEALED

        if self.comparison.summary.split == SEALED:
            self.notify("This verdict is on the sealed split already; each look is counted.", severity="warning")
            return
        self.tunelab.main.post_message(FinalLook(self.comparison.summary))
        self.app.pop_screen()
        self.notify("Judging these cells on the sealed test split (one look, counted)…")

    def action_write_report(self) -> None:
        if self.comparison.verdict is None:
            self.notify(self.comparison.why_none, severity="warning")
            return
        default = str(self.report_path(self.tunelab.root, self.comparison))

        def write(path: str | None) -> None:
            if path and path.strip():
                self._write_report(Path(path.strip()).expanduser())

        self.app.push_screen(AskScreen("Write the report (.html or .md) to", default), write)

    @work(thread=True, group="report", exclusive=True)
    def _write_report(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = self.tunelab.workbench.verdicts.write_report(self.comparison, path)
        except (OSError, TunelabError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"Report written: {written}")

    @staticmethod
    def report_path(root: Path, comparison: Comparison) -> Path:
        return root / "reports" / f"{comparison.summary.id}.html"

    def _start_column(self, what: str, under_cursor: bool) -> tuple[str, str, str] | None:
        """The prompt id, its column's label and the row's model `what` starts from: the column under the cursor
        (`under_cursor`: it must hold a prompt; else the first prompt column when it does not), None when said why."""
        from core.data.datasets import SEALED

        selected = self._selected()
        cols = self.comparison.grid.cols
        col = cols[selected[1]] if selected and cols[selected[1]].key else None
        if col is None and not (under_cursor and selected):
            col = next((c for c in cols if c.key), None)
        if col is None or not col.key:
            where = "a prompt column: move the cursor to one" if under_cursor else "a prompt: this verdict has none"
            self.notify(f"{what} needs {where}.", severity="warning")
            return None
        if self.comparison.summary.split == SEALED:
            self.notify(f"{what} runs on the dev rows: run it from a verdict on them.", severity="warning")
            return None
        if self.query_one("#verdict-progress").display:
            self.notify(f"{self.running} is running; esc stops it.", severity="warning")
            return None
        return col.key, col.label, self.comparison.grid.rows[selected[0] if selected else 0].model

    def action_both_together(self) -> None:
        """p->w->p from the prompt under the cursor (else the first prompt column), on the dev rows it was graded on."""
        start = self._start_column("Both together", under_cursor=False)
        if start is None:
            return
        prompt_id, label, model = start

        def go(budget: str | None) -> None:
            if budget is not None and budget.strip():
                self._start("Both together", prompt_id, model, budget.strip(), both=True)

        question = f"Both together from {label}: graded generations each search may spend"
        self.app.push_screen(AskScreen(question, "400"), go)

    def action_distill(self) -> None:
        """The prompt of the column under the cursor distilled into a LoRA graded with no prompt beside it."""
        from core.workbench.together import BUDGET

        start = self._start_column("Distill", under_cursor=True)
        if start is not None:
            prompt_id, _, model = start
            self._start("Distill", prompt_id, model, str(BUDGET), both=False)

    def _start(self, what: str, prompt_id: str, model: str, budget: str, *, both: bool) -> None:
        self.running = what
        self.query_one("#verdict-progress").display = True
        self._together(prompt_id, model, budget, both=both)

    @work(thread=True, group="together", exclusive=True)
    def _together(self, prompt_id: str, model: str, budget: str, *, both: bool) -> None:
        """p->w->p (`both`) or the prompt distilled, then the verdict with their rows; esc (`cancel`) stops it."""
        from dataclasses import replace

        from core.evals.plan import EvalRequest
        from core.workbench.service import PromptRef
        from core.workbench.together import Steps, compare_together

        workbench = self.tunelab.workbench
        watcher = LineProgress(self.app, self.cancel, self.show_progress)
        try:
            if not budget.isdigit():
                raise TunelabError(f"the budget is a number of graded generations, got '{budget}'")
            row, version = workbench.prompts.get(prompt_id)
            ref = PromptRef(row["name"], version)
            request = EvalRequest.of(self.comparison.summary)
            options = replace(self.tunelab.options, model=model, adapter=None)
            plan = workbench.compare_plan(request, options, [ref])
            steps = Steps(
                request,
                int(budget),
                watcher=watcher,
                cancel=self.cancel,
            )
            done = compare_together(
                workbench, plan, self.tunelab.local_engine, steps, both=both, distill=None if both else ref
            )
        except (OSError, TunelabError) as exc:
            watcher.failed(exc)
            return
        if not self.cancel.is_set():
            self.notify("\n".join(done.lines), timeout=12)
            self.tunelab.main.post_message(VerdictReady(done.comparison))

    def show_progress(self, text: str) -> None:
        if self.cancel.is_set():
            return
        shown = self.query_one("#verdict-progress", Static)
        shown.update(Text(f"{self.running} · {text} · esc stops it" if text else ""))
        shown.display = bool(text)
