"""The eval matrix: rows are dataset items, columns are variants from this session's eval runs. The pane
runs its evals (and the demo comparison) in its own thread workers and handles their messages; what the
screen does about them (bring the Eval tab to the front, say an error, announce an eval done out of sight)
it asks by posting a message (`tui.messages`). The dataset form above it is the main screen's.

Cells fill in as batches finish. Headers stay narrow (`index rate`, `*` marks the baseline) so several
variants fit at 80 columns; the lines under the table name each variant with its interval, and once a
baseline is pinned (`b` on a column) its change and the items it fixed (✓+) and broke (✗-).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, Static

from core.engine.options import ModelOptions
from core.errors import TunelabError
from tui.messages import (
    Announce,
    EvalFinished,
    EvalProgress,
    EvalRow,
    EvalStarted,
    Reveal,
    VerdictReady,
    WorkbenchFailed,
)

if TYPE_CHECKING:
    from core.evals.plan import EvalRequest, Variant
    from core.storage.schemas import EvalSummary, GradedRow
    from core.workbench.service import Comparison, PromptRef
    from tui.app import TunelabApp

FIXED_COLUMNS = 1  # "id expected", always in view
CELL_WIDTH = 11  # "✓+ " and nine characters of output: widths are set, so layout never depends on timing


@dataclass
class Column:
    token: str  # the run it belongs to (a local token until the run id is known)
    variant: int
    label: str
    summary: EvalSummary | None = None
    live: dict[str, GradedRow] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """The label without the model: the prompt and mode, and the adapter when there is one."""
        prompt, _, model = self.label.partition(" | ")
        _, plus, adapter = model.partition("+")
        return f"{prompt} +{adapter}" if plus else prompt

    def cell(self, item_id: str) -> tuple[bool, str] | None:
        if self.summary is not None:
            score = self.summary.scores(self.variant).get(item_id)
            return None if score is None else (score.passed, score.majority)
        graded = self.live.get(item_id)
        return None if graded is None else (graded.passed, graded.output)


class EvalPane(Vertical):
    DEFAULT_CSS = """
    EvalPane {
        padding: 0;
        #eval-progress { height: 1; }
        #eval-progress Bar { width: 1fr; }
        #eval-table { height: 1fr; }
        #eval-summary { height: auto; max-height: 4; color: $text-muted; }
        #eval-verdict { height: auto; max-height: 4; color: $text; text-style: bold; display: none; }
    }
    """
    HELP = (
        "The eval matrix: one row per item, one column per variant (prompt x model x LoRA), with pass "
        "rates, Wilson intervals and the change against the pinned baseline. <eval> runs the prompt on "
        "screen; <pin-baseline> pins the column under the cursor as the baseline; <copy-column> copies that column as TSV."
    )
    BINDINGS = [
        Binding("b", "pin", "Pin baseline", id="pin-baseline"),
        Binding("y", "copy_column", "Copy column", id="copy-column"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.token: str | None = None  # the eval run in progress
        self.cancel = threading.Event()
        self.last: EvalSummary | None = None  # this session's newest complete eval: the verdict's
        self.tokens = itertools.count(1)
        self.columns: list[Column] = []
        self.items: dict[str, str | None] = {}  # item id -> expected, in first-seen order
        self.baseline: tuple[EvalSummary, int] | None = None
        self.diffs: dict[str, dict[str, Any]] = {}  # column key -> delta and fixed/broken sets

    def compose(self) -> ComposeResult:
        yield ProgressBar(id="eval-progress", show_eta=False)
        table: DataTable[Text] = DataTable(id="eval-table", zebra_stripes=True)
        table.cursor_type = "column"
        table.fixed_columns = FIXED_COLUMNS
        yield table
        yield Static("ctrl+g runs the prompt over the split", id="eval-summary")
        yield Static("", id="eval-verdict")

    def on_unmount(self) -> None:
        self.cancel.set()  # the app is quitting: the eval in flight stops (what it graded is kept)

    @property
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    def begin(self) -> str:
        """A new eval run's token, with a fresh cancel."""
        self.token = f"t{next(self.tokens)}"
        self.cancel = threading.Event()
        return self.token

    def run(self, request: EvalRequest, ref: PromptRef, adapter: str | None, model: str) -> None:
        """Evaluate `ref` (and no prompt, and the 2x2 with `adapter`) on `request` with `model`: the cells
        not shown yet."""
        self._run_eval(self.begin(), request, ref, adapter, {c.label for c in self.columns}, model)

    @work(thread=True, group="eval", exclusive=False)
    def _run_eval(
        self, token: str, request: EvalRequest, ref: PromptRef, adapter: str | None, shown: set[str], model: str
    ) -> None:
        """The cells (they read the config and, for a served model's adapter, the run folders), then the eval."""
        workbench = self.tunelab.workbench
        try:
            candidates = workbench.variants([None, ref], [None, adapter] if adapter else [None], [model])
            workbench.prompts.save(ref.name, ref.version)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        variants = [v for v in candidates if v.label not in shown] or candidates[1:2]
        self.post_message(EvalStarted(token, [v.label for v in variants]))
        self._evaluate(token, request, variants)

    def run_final(self, summary: EvalSummary) -> None:
        """The cells of `summary` once more, on the sealed test split (a look, counted), then the verdict."""
        self._run_final(self.begin(), summary)

    @work(thread=True, group="eval", exclusive=False)
    def _run_final(self, token: str, summary: EvalSummary) -> None:
        try:
            request, variants = self.tunelab.workbench.verdicts.final_plan(summary)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        self.post_message(EvalStarted(token, [v.label for v in variants]))
        self._evaluate(token, request, variants, verdict_after=True)

    def _evaluate(self, token: str, request: EvalRequest, variants: list[Variant], verdict_after: bool = False) -> None:
        """Run the eval (in the calling worker's thread), its rows and progress posted here as they come."""
        app = self.tunelab
        try:
            summary = app.workbench.run_eval(
                request,
                variants,
                app.local_engine,
                on_row=lambda graded: self.post_message(EvalRow(token, graded)),
                on_progress=lambda done, total: self.post_message(EvalProgress(token, done, total)),
                cancel=self.cancel,
            )
            baseline = app.workbench.baseline(summary)
            verdict = self._verdict_text(summary)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        self.post_message(EvalFinished(token, summary, baseline=baseline, verdict=verdict))
        if verdict_after and summary.done and len(summary.variants) > 1:
            self.post_message(VerdictReady(app.workbench.verdicts.comparison(summary)))

    def _verdict_text(self, summary: EvalSummary, judged: Comparison | None = None) -> str | None:
        """The verdict sentence and its notes for an eval of two cells or more (reads run configs: off the loop)."""
        if not summary.done:
            return f"Eval {summary.status}: a partial eval gives no verdict and cannot be a baseline."
        if len(summary.variants) < 2:
            return None
        judged = judged or self.tunelab.workbench.verdicts.comparison(summary)
        return "\n".join([judged.verdict.sentence if judged.verdict else judged.why_none, *judged.warnings])

    def compare_demo(self, options: ModelOptions) -> None:
        """The demo comparison: two LoRAs trained, every cell graded here, then the verdict screen."""
        self._compare(self.begin(), options)

    @work(thread=True, group="eval", exclusive=False)
    def _compare(self, token: str, options: ModelOptions) -> None:
        from tui.compare_progress import CompareMessages

        app = self.tunelab
        try:
            plan = app.workbench.demo_plan(options)
            watcher = CompareMessages(self.post_message, token, plan.seeds)
            judged = app.workbench.compare(plan, app.local_engine, watcher, self.cancel)
            baseline = app.workbench.baseline(judged.summary)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        verdict = self._verdict_text(judged.summary, judged)
        self.post_message(EvalFinished(token, judged.summary, baseline=baseline, verdict=verdict))
        if judged.summary.done:
            self.post_message(VerdictReady(judged))

    @work(thread=True, group="verdict", exclusive=True)
    def open_verdict(self) -> None:
        """This session's newest complete eval, else the newest stored one with two cells (off the UI loop)."""
        workbench, summary = self.tunelab.workbench, self.last
        try:
            if summary is None:
                newest = next((r for r in workbench.evals.list() if r.done and len(r.variants) > 1), None)
                summary = workbench.evals.load(newest.id) if newest else None
            if summary is None:
                self.post_message(
                    WorkbenchFailed("No complete eval yet: ctrl+g runs one (or 'Compare on the demo task' in ctrl+p).")
                )
                return
            self.post_message(VerdictReady(workbench.verdicts.comparison(summary)))
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))

    @on(EvalStarted)
    def eval_started(self, message: EvalStarted) -> None:
        if message.token == self.token:
            self.start_run(message.token, message.labels, clean=message.clean)
            self.post_message(Reveal(self))

    @on(EvalRow)
    def eval_row(self, message: EvalRow) -> None:
        self.add_row(message.token, message.graded)

    @on(EvalProgress)
    def eval_progress(self, message: EvalProgress) -> None:
        self.progress(message.done, message.total)

    @on(EvalFinished)
    def eval_finished(self, message: EvalFinished) -> None:
        self.token = None
        if message.summary is None:
            self.drop_run(message.token)
            self.post_message(WorkbenchFailed(message.error or "eval failed"))
            return
        if message.summary.done:
            self.finish_run(message.token, message.summary)
            self.last = message.summary
        else:  # a partial column never stays to be compared, pinned or taken as done by the next ctrl+g
            self.drop_run(message.token)
        self.show_baseline(message.baseline)
        self.show_verdict(message.verdict)
        if (judge := message.summary.judge) is not None:  # the judge's cost, said apart
            self.notify(judge.line, severity="warning" if judge.errors else "information")
        best = max(message.summary.variants, key=lambda v: v.pass_rate)
        self.post_message(Announce(self, f"Eval done: best {best.pass_rate:.0%} ({best.label})"))

    @work(thread=True, group="pin", exclusive=True)
    def _pin(self, run_id: str, variant: int) -> None:
        """Pinning takes the metadata lock: off the UI loop."""
        evals = self.tunelab.workbench.evals
        try:
            doc = evals.pin(run_id, variant)
            summary = evals.load(run_id)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.app.call_from_thread(self._pinned, doc, summary, variant)

    def _pinned(self, doc: dict[str, Any], summary: EvalSummary, variant: int) -> None:
        self.show_baseline((summary, variant))
        self.notify(f"Baseline for {doc['key']}: {summary.variants[variant].label}")

    @property
    def table(self) -> DataTable:
        return self.query_one("#eval-table", DataTable)

    def start_run(self, token: str, labels: list[str], clean: bool = False) -> None:
        """New columns for the eval `token`; `clean` (a new comparison) drops the earlier ones first."""
        self.columns = [] if clean else self.columns
        self.columns += [Column(token, i, label) for i, label in enumerate(labels)]
        self.query_one("#eval-progress", ProgressBar).update(total=None, progress=0)
        self.rebuild()

    def progress(self, done: int, total: int) -> None:
        self.query_one("#eval-progress", ProgressBar).update(total=total, progress=done)

    def add_row(self, token: str, graded: GradedRow) -> None:
        column = next(c for c in self.columns if c.token == token and c.variant == graded.variant)
        column.live[graded.item] = graded
        table = self.table
        if graded.item not in self.items:
            self.items[graded.item] = graded.expected
            table.add_row(self._item_label(graded.item), *[""] * len(self.columns), key=graded.item)
        table.update_cell(graded.item, self._key(column), self._cell_text(column, graded.item))

    def finish_run(self, token: str, summary: EvalSummary) -> None:
        for column in self.columns:
            if column.token == token:
                column.token, column.summary, column.live = summary.id, summary, {}
        self.rebuild()

    def drop_run(self, token: str) -> None:
        self.columns = [c for c in self.columns if c.token != token]
        self.rebuild()

    def show_baseline(self, baseline: tuple[EvalSummary, int] | None) -> None:
        """Use `baseline` for deltas; its column joins the matrix if it came from an earlier session."""
        self.baseline = baseline
        if baseline is not None:
            summary, variant = baseline
            if not any(c.token == summary.id and c.variant == variant for c in self.columns):
                label = summary.variants[variant].label
                self.columns.insert(0, Column(summary.id, variant, label, summary))
                for item_id in summary.scores(variant):
                    self.items.setdefault(item_id, None)
        self.rebuild()

    def _item_label(self, item_id: str) -> str:
        return f"{item_id} {(self.items.get(item_id) or '')[:4]}"

    def _key(self, column: Column) -> str:
        return f"{column.token}:{column.variant}"

    def _is_baseline(self, column: Column) -> bool:
        return self.baseline is not None and (column.token, column.variant) == (
            self.baseline[0].id,
            self.baseline[1],
        )

    def _comparison(self, column: Column) -> dict[str, Any] | None:
        return self.diffs.get(self._key(column))

    def _compare_all(self) -> None:
        """Each column against the baseline, once per rebuild (cells look items up in sets)."""
        from core.evals.stored import baseline_diff

        self.diffs = {}
        for column in self.columns:
            if self.baseline is None or column.summary is None or self._is_baseline(column):
                continue
            diff = baseline_diff(column.summary, *self.baseline)[column.variant]
            self.diffs[self._key(column)] = {
                "delta": diff["delta"],
                "fixed": set(diff["fixed"]),
                "broken": set(diff["broken"]),
            }

    def _cell_text(self, column: Column, item_id: str) -> Text:
        """The mark and the start of what was graded: a reasoning model's answer, not its thinking."""
        from core.data.graders import final_answer

        cell = column.cell(item_id)
        if cell is None:
            return Text("…", style="dim")
        passed, output = cell
        output = final_answer(output) or output
        mark, style = ("✓", "green") if passed else ("✗", "red")
        diff = self._comparison(column)
        if diff is not None and item_id in diff["fixed"]:
            mark, style = "✓+", "bold green"
        elif diff is not None and item_id in diff["broken"]:
            mark, style = "✗-", "bold red"
        return Text(f"{mark} {' '.join(output.split())[:9]}", style=style)

    def _header(self, index: int, column: Column) -> str:
        if column.summary is None:
            return f"{index} …"
        rate = column.summary.variants[column.variant].pass_rate
        return f"{index} {rate:.0%}{'*' if self._is_baseline(column) else ''}"

    def rebuild(self) -> None:
        self._compare_all()
        table = self.table
        cursor = table.cursor_column
        table.clear(columns=True)
        width = max([10, *(len(self._item_label(i)) for i in self.items)])
        table.add_column("item", key="item", width=width)
        for i, column in enumerate(self.columns):
            table.add_column(self._header(i, column), key=self._key(column), width=CELL_WIDTH)
        for item_id in self.items:
            table.add_row(self._item_label(item_id), *[self._cell_text(c, item_id) for c in self.columns], key=item_id)
        if self.columns:
            table.move_cursor(column=min(max(cursor, FIXED_COLUMNS), FIXED_COLUMNS + len(self.columns) - 1))
        self.query_one("#eval-summary", Static).update(Text(self.summary_text()))  # "[lo-hi]" is not markup

    def show_verdict(self, text: str | None) -> None:
        """The last eval's verdict (which cell wins and whether it is real), or why there is none."""
        verdict = self.query_one("#eval-verdict", Static)
        verdict.update(Text(text or ""))
        verdict.display = bool(text)

    def summary_text(self) -> str:
        lines = []
        for i, column in enumerate(self.columns):
            if column.summary is None:
                continue
            v = column.summary.variants[column.variant]
            line = f"{i} {column.short} {v.pass_rate:.1%} [{v.ci[0]:.0%}-{v.ci[1]:.0%}]"
            if v.mean_latency_s is not None:
                line += f" {v.mean_latency_s * 1000:.0f}ms"
            if v.mean_completion_tokens is not None:
                line += f" {v.mean_completion_tokens:.1f}tok"
            diff = self._comparison(column)
            if self._is_baseline(column):
                line += " *baseline"
            elif diff is not None:
                line += f" Δ{diff['delta'] * 100:+.1f} fixed {len(diff['fixed'])} broken {len(diff['broken'])}"
            lines.append(line)
        return "\n".join(lines) or "ctrl+g runs the prompt over the split"

    def selected(self) -> Column | None:
        index = self.table.cursor_column - FIXED_COLUMNS
        return self.columns[index] if 0 <= index < len(self.columns) else None

    def action_copy_column(self) -> None:
        column = self.selected()
        if column is None:
            self.notify("Move to a variant column to copy it.", severity="warning")
            return
        lines = ["item\texpected\tpassed\toutput"]
        for item_id, expected in self.items.items():
            cell = column.cell(item_id)
            if cell is not None:
                passed, output = cell
                lines.append("\t".join([item_id, expected or "", "yes" if passed else "no", " ".join(output.split())]))
        self.app.copy_to_clipboard("\n".join(lines) + "\n")
        self.notify(f"Copied {len(lines) - 1} rows of {column.short}.")

    def action_pin(self) -> None:
        column = self.selected()
        if column is None or column.summary is None:
            self.notify("Move to a finished variant column to pin it.", severity="warning")
            return
        self._pin(column.summary.id, column.variant)
