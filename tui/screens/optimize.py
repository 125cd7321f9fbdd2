"""Optimize this prompt: the search of its prompt arm (`core.workbench.optimizing.optimize`) on the dev rows
of the dataset form, live.

One row per candidate: its kind, its k (demonstrations), what changed, its dev pass rate with the Wilson
interval, the items it was scored on and the calls spent when it was; below, the best pass rate so far (of
the candidates scored on the most items) against the calls, and at the end the best found judged against
the start by the verdict adjusted for every candidate tried. The search runs in a thread worker, and each
round posts one snapshot of the table. esc stops it (what was scored stays: every round is an eval in
history, tagged `optimize`); enter puts the candidate under the cursor in the prompt editor and closes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from core.data.prompts import PromptVersion
from core.errors import TunelabError
from tui.widgets.loss_chart import LossChart

if TYPE_CHECKING:
    from core.evals.plan import EvalRequest
    from core.optimize.search import Search
    from core.workbench.optimizing import Optimized
    from tui.app import TunelabApp

BUDGET = 400  # graded generations, as `tunelab optimize --budget` has it
STRATEGIES = ("shots", "instructions")  # as `tunelab optimize --strategies` has them
COLUMNS = (("kind", 12), ("k", 2), ("what changed", 0), ("dev pass", 14), ("items", 5), ("calls", 5))
IDLE_HINT = "budget in graded generations · enter starts · esc closes"
CHANGE_WIDTH = 20  # the least "what changed" gets; it takes what the screen has left


@dataclass(frozen=True)
class Row:
    """One candidate as the table shows it: a snapshot made in the worker's thread, never the live search."""

    version: PromptVersion
    kind: str
    change: str
    rate: float
    interval: tuple[float, float]
    items: int
    calls: int  # the search's calls when it was last scored

    @property
    def k(self) -> str:
        return str(self.version.shots.k) if self.version.shots is not None and self.version.demonstrates else ""

    @property
    def shown_rate(self) -> str:
        lo, hi = self.interval
        return f"{self.rate:.1%} [{lo * 100:.0f}-{hi * 100:.0f}]"


class Snapshot:
    """The table of a search so far; remembers when each candidate was last scored (the worker keeps one)."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[int, int]] = {}  # version id -> (items scored, the search's calls then)

    def rows(self, search: Search) -> list[Row]:
        """Every candidate scored, those on the most items first, then by pass rate."""
        from core.data.graders import wilson_interval

        out = []
        for vid, scored in search.scored.items():
            items = len(scored.scores)
            if vid not in self.at or self.at[vid][0] != items:
                self.at[vid] = (items, search.calls)
            interval = wilson_interval(sum(scored.scores), items)
            c = scored.candidate
            out.append(Row(c.version, c.kind, c.change, scored.rate, interval, items, self.at[vid][1]))
        return sorted(out, key=lambda r: (-r.items, -r.rate))


def announcement(result: Optimized, rows: list[Row]) -> str:
    """What the search found, in a few lines: the best and the start on the dev rows, the adjusted verdict."""
    by_id = {row.version.id: row for row in rows}
    name, search = result.name, result.search
    best, start = by_id.get(result.best.id), by_id.get(result.start.id)
    stopped = search.stopped == "cancelled"
    lines = [
        f"Optimize {name} {'stopped' if stopped else 'done'}: {len(search.scored)} candidates, {search.calls} calls "
        f"in {result.elapsed_s:.0f} s{'; what was scored stays in history (tag:optimize)' if stopped else ''}."
    ]
    if best is not None and start is not None:
        lines.append(
            f"best {name}@{result.best.id[:6]} ({result.best_change}) {best.shown_rate} on {best.items} dev rows, "
            f"the start {start.shown_rate} on {start.items}; saved as {name}."
        )
    if result.verdict is not None:
        lines.append(f"{result.verdict.sentence} (after {result.tried} candidates tried on these items)")
    elif result.best.id == result.start.id and not stopped:
        lines.append("The start is the best found: no candidate beat it on the dev rows.")
    else:
        lines.append("No verdict: the search stopped before the best and the start were scored on every dev row.")
    return "\n".join(lines)


class OptimizeScreen(Screen[PromptVersion | None]):
    DEFAULT_CSS = """
    OptimizeScreen {
        #optimize-box { height: 1fr; padding: 0 1; }
        #optimize-title { height: 1; color: $text-muted; }
        #optimize-form { height: 1; }
        #optimize-budget { width: 6; }
        #optimize-strategies { width: 1fr; max-width: 30; }
        #optimize-proposer { width: 1fr; }
        #optimize-hint { height: 1; color: $text-muted; }
        #optimize-table { height: 1fr; }
        #optimize-chart { height: 5; }
        #optimize-status { height: auto; max-height: 6; }
        #optimize-status.error { color: $error; }
    }
    """
    HELP = (
        "Optimize: candidate versions of the prompt (1, 2, 4 and 8 demonstrations by random and similar; "
        "rewrites of the instruction, by the proposer model or built-in; with reflect, the proposer reads the "
        "start's failures and rewrites) searched by successive halving on the dev rows within the "
        "budget of graded generations. The proposer is any model tunelab runs (URL#MODEL, endpoint:NAME, a "
        "local folder, demo); empty: built-in instruction variants, offline. A row per candidate: the dev pass rate with its 95% interval, the items "
        "it was scored on, the calls spent when it was. <optimize-stop> stops the search (every round is an "
        "eval in history, tag:optimize), then closes; enter puts the candidate under the cursor in the editor."
    )
    BINDINGS = [Binding("escape", "stop", "Stop / close", id="optimize-stop")]

    @dataclass(eq=False)  # a message is itself, not its fields
    class Round(Message):
        """A round of the search was scored: the table as it stands."""

        rows: list[Row]
        calls: int

    @dataclass(eq=False)  # a message is itself, not its fields
    class Finished(Message):
        rows: list[Row]
        calls: int
        text: str

    @dataclass(eq=False)  # a message is itself, not its fields
    class Failed(Message):
        error: str

    def __init__(self, prompt_name: str, start: PromptVersion, request: EvalRequest, model: str) -> None:
        super().__init__()
        self.prompt_name, self.start, self.request, self.model = prompt_name, start, request, model
        self.cancel = threading.Event()
        self.state = "ready"  # ready | running | stopping | done
        self.budget = BUDGET
        self.strategies: tuple[str, ...] = STRATEGIES
        self.proposer: str | None = None
        self.rows: list[Row] = []
        self.points: list[tuple[float, float]] = []  # (calls, the leader's pass rate in %)

    @property
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    def compose(self) -> ComposeResult:
        request = self.request
        with Vertical(id="optimize-box"):
            yield Static(
                Text(
                    f"Optimize {self.prompt_name}@{self.start.id[:6]} · {request.dataset} dev rows "
                    f"({request.split or 'all'}) · grader {request.grader} · {self.model}"
                ),
                id="optimize-title",
            )
            with Horizontal(id="optimize-form"):
                yield Label("budget", classes="param-label")
                yield Input(
                    str(BUDGET),
                    id="optimize-budget",
                    compact=True,
                    tooltip="graded generations the search may spend (at least 50)",
                )
                yield Label(" strategies", classes="param-label")
                yield Input(
                    ",".join(STRATEGIES),
                    id="optimize-strategies",
                    compact=True,
                    tooltip="shots, instructions, reflect (needs a proposer); comma-separated",
                )
                yield Label(" proposer", classes="param-label")
                yield Input(
                    "",
                    id="optimize-proposer",
                    compact=True,
                    placeholder="built-in",
                    tooltip="the model that writes instructions and reads failures: URL#MODEL, endpoint:NAME, "
                    "a local one; empty: built-in instruction variants (offline)",
                )
            yield Static(IDLE_HINT, id="optimize-hint")
            yield DataTable(id="optimize-table", cursor_type="row", zebra_stripes=True)
            yield LossChart(x_name="calls", waiting="the best pass rate so far, against the calls", id="optimize-chart")
            yield Static("", id="optimize-status")
        yield Footer()

    def on_mount(self) -> None:
        self._columns(self.app.size.width)
        self.query_one("#optimize-budget", Input).focus()

    def on_unmount(self) -> None:
        self.cancel.set()  # closed (a candidate opened, or the app quitting): the search stops, what it scored stays

    def on_resize(self, event: events.Resize) -> None:
        under = self._under_cursor()
        self._columns(event.size.width)
        self._fill(under=under)

    def _columns(self, width: int) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        fixed = sum(w + 2 for _, w in COLUMNS) + 6  # cell padding, the box's padding, the scrollbar
        for label, w in COLUMNS:
            table.add_column(label, key=label, width=w or max(CHANGE_WIDTH, width - fixed))

    # -- the search ---------------------------------------------------------------------------------
    @on(Input.Submitted, "#optimize-form Input")
    def begin(self) -> None:
        from core.optimize.candidates import parse_strategies

        if self.state != "ready":
            return
        raw = self.query_one("#optimize-budget", Input).value.strip()
        if not raw.isdigit():
            self._status(f"budget must be a whole number of graded generations, got '{raw}'", error=True)
            return
        proposer = self.query_one("#optimize-proposer", Input).value.strip() or None
        try:
            strategies = parse_strategies(self.query_one("#optimize-strategies", Input).value)
            if "reflect" in strategies and proposer is None:
                raise TunelabError("strategies reflect needs a proposer (the model that reads the failures)")
        except TunelabError as exc:
            self._status(str(exc), error=True)
            return
        self.budget, self.strategies, self.proposer, self.state = int(raw), strategies, proposer, "running"
        self._form(enabled=False)
        self.query_one("#optimize-hint", Static).update("esc stops the search")
        self._status(f"scoring the first round on the dev rows… (budget {self.budget} calls; esc stops)")
        self.query_one(DataTable).focus()
        self._search(self.budget)

    @work(thread=True, group="optimize", exclusive=True)
    def _search(self, budget: int) -> None:
        """The search on the model the main screen loaded; one snapshot of the table per round."""
        from core.workbench.optimizing import optimize

        app, snapshot = self.tunelab, Snapshot()

        def on_round(search: Search) -> None:
            self.post_message(self.Round(snapshot.rows(search), search.calls))

        try:
            result = optimize(
                app.workbench, self.prompt_name, self.start, self.request, app.local_engine, budget=budget,
                strategies=self.strategies, proposer=self.proposer, model=self.model, cancel=self.cancel,
                on_round=on_round,
            )  # fmt: skip
            rows = snapshot.rows(result.search)
            text = announcement(result, rows)
        except (OSError, TunelabError) as exc:
            self.post_message(self.Failed(str(exc)))
            return
        self.post_message(self.Finished(rows, result.search.calls, text))
        app.notify(text, timeout=15)  # thread-safe; said even when the screen was closed meanwhile

    @on(Round)
    def round_scored(self, message: Round) -> None:
        self._show(message.rows, message.calls)
        if self.state == "running":
            self._status(
                f"{len(self.points)} round(s) · {message.calls} of {self.budget} calls · {len(message.rows)} "
                "candidates · esc stops, enter opens a candidate"
            )

    @on(Finished)
    def finished(self, message: Finished) -> None:
        self.state = "done"
        self._show(message.rows, message.calls)
        self.query_one("#optimize-hint", Static).update("enter opens a candidate in the editor · esc closes")
        self._status(message.text)

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.state = "ready"  # the form may be changed and the search started again
        self._form(enabled=True)
        self.query_one("#optimize-budget", Input).focus()
        self.query_one("#optimize-hint", Static).update(IDLE_HINT)
        self._status(message.error, error=True)

    def _form(self, enabled: bool) -> None:
        for field in self.query("#optimize-form Input").results(Input):
            field.disabled = not enabled

    def _show(self, rows: list[Row], calls: int) -> None:
        if rows:
            self.points.append((calls, rows[0].rate * 100))
            self.query_one(LossChart).set_series([(self.points, "green")])
        self._fill(rows)

    def _fill(self, rows: list[Row] | None = None, under: Row | None = None) -> None:
        """The rows (new ones, or again), the cursor kept on the candidate it was on."""
        table = self.query_one(DataTable)
        under = under or self._under_cursor()
        self.rows = self.rows if rows is None else rows
        table.clear()
        for row in self.rows:
            style = "bold" if row.kind == "start" else ""
            table.add_row(
                Text(row.kind, style), row.k, Text(row.change), row.shown_rate, str(row.items), str(row.calls),
                key=row.version.id,
            )  # fmt: skip
        if under is not None and under.version.id in {r.version.id for r in self.rows}:
            table.move_cursor(row=table.get_row_index(under.version.id))

    def _under_cursor(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.rows or table.row_count == 0:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#optimize-status", Static)
        status.update(Text(text))
        status.set_class(error, "error")

    # -- esc and enter --------------------------------------------------------------------------------
    def action_stop(self) -> None:
        """Running: stop the search (the round in flight ends as a partial eval); else close."""
        if self.state == "running":
            self.state = "stopping"
            self.cancel.set()
            self._status("stopping… what was scored stays in history (tag:optimize); esc again closes")
            return
        self.dismiss(None)

    @on(DataTable.RowSelected, "#optimize-table")
    def open_candidate(self) -> None:
        row = self._under_cursor()
        if row is not None:
            self.cancel.set()  # a search still running stops: the candidate chosen is what the user wants now
            self.dismiss(row.version)
