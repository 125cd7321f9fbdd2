"""The history browser: generations, eval runs and training runs, newest first, searched as you type.

Searches and record loads run in thread workers and come back as messages, so typing never waits on
the store; a stale answer (an older search token) is dropped. Pages load as the cursor nears the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import ColumnKey

from core.errors import TunelabError
from core.history.io import add_to_dataset, export_history
from core.history.query import HistoryQuery, parse_query
from core.history.store import History, index_row, label_of
from core.training.runs import Runs
from tui.messages import HistoryPage, HistoryRecord
from tui.screens.ask import AskScreen

PAGE = 100
FLAGS = {"good": "+", "bad": "-", "corrected": "~"}
KIND_SHORT = {"generation": "gen", "eval": "eval", "train": "train"}
COLUMNS = (
    ("when", "when", 11),
    ("", "flags", 2),
    ("kind", "kind", 5),
    ("model/adapter", "who", 14),
    ("prompt", "prompt", 22),
    ("output", "output", 40),
)
SEARCH_HELP = "search… words, kind: model: adapter: prompt: tag: is:starred label: since: until:"


class HistoryScreen(Screen[dict[str, Any] | None]):
    DEFAULT_CSS = """
    HistoryScreen {
        #history-box { height: 1fr; }
        #history-query { height: 1; border: none; padding: 0 1; }
        #history-table { height: 3fr; min-height: 5; overflow-x: hidden; }
        #history-status { height: 1; color: $text-muted; padding: 0 1; }
        #history-status.error { color: $error; }
        #history-preview-scroll { height: 2fr; max-height: 16; border-top: solid $primary 50%; padding: 0 1; }
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", id="history-close"),
        Binding("slash", "focus_search", "Search", id="history-search"),
        Binding("down", "focus_list", "List", id="history-list", show=False),  # from the search box
        Binding("s", "star", "Star", id="history-star"),
        Binding("t", "tag", "Tags", id="history-tag"),
        Binding("n", "note", "Note", id="history-note"),
        Binding("plus,equals_sign", "label('good')", "Good", id="history-good"),
        Binding("minus", "label('bad')", "Bad", id="history-bad"),
        Binding("c", "correct", "Correct", id="history-correct"),
        Binding("e", "export", "Export", id="history-export"),
        Binding("d", "to_dataset", "To dataset", id="history-to-dataset"),
        Binding("y", "copy('output')", "Copy output", id="history-copy", show=False),
        Binding("Y", "copy('record')", "Copy record", id="history-copy-record", show=False),
        Binding("j", "move(1)", "Down", id="history-down", show=False),
        Binding("k", "move(-1)", "Up", id="history-up", show=False),
        Binding("g", "move_to(0)", "First", id="history-first", show=False),
        Binding("G", "move_to(-1)", "Last", id="history-last", show=False),
    ]
    HELP = (
        "Every generation, eval and training run, newest first. Type to search: words match prompts, "
        "outputs, corrections, notes and tags; filters kind:, model:, adapter:, prompt:, tag: (or #x), "
        "is:starred, label:good|bad|corrected|any, since:/until:YYYY-MM-DD. enter re-opens a record in "
        "the editor; <history-star> star, <history-tag> tags, <history-note> note, <history-good> good, "
        "<history-bad> bad, <history-correct> correct the output, <history-copy> copy the output, "
        "<history-copy-record> copy the record (JSON), <history-export> export what matches, "
        "<history-to-dataset> add good/corrected outputs to a dataset."
    )

    def __init__(self, history: History, root: Path, query: str = "", export: bool = False) -> None:
        super().__init__()
        self.history, self.root, self.initial = history, Path(root), query
        self.export_at_once = export  # opened by the palette's "Export history"
        self.rows: list[dict[str, Any]] = []
        self.cursor: Any = None  # the next page's start, None at the end
        self.query_obj = HistoryQuery()
        self.token = 0
        self.loading_more = False
        self.record: dict[str, Any] | None = None  # the highlighted row's full record

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Input(self.initial, placeholder=SEARCH_HELP, id="history-query")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="history-status")
            with VerticalScroll(id="history-preview-scroll"):
                yield Static("", id="history-preview")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        self.query_one("#history-query", Input).focus()  # typing searches; enter (or down) moves to the list
        self.search(self.initial)
        if self.export_at_once:
            self.call_after_refresh(self.action_export)

    # -- searching --------------------------------------------------------------------------------
    @on(Input.Changed, "#history-query")
    def query_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#history-query")
    def query_submitted(self) -> None:
        self.query_one(DataTable).focus()

    def search(self, text: str) -> None:
        self.token += 1
        try:
            self.query_obj = parse_query(text)
        except TunelabError as exc:
            self._status(str(exc), error=True)
            return
        self._run_search(self.token, self.query_obj, None, False)

    @work(thread=True, exclusive=True, group="history-search")
    def _run_search(self, token: int, query: HistoryQuery, cursor: Any, append: bool) -> None:
        try:
            page = self.history.search(query, limit=PAGE, cursor=cursor)
        except (OSError, TunelabError) as exc:
            self.post_message(HistoryPage(token, [], None, append=append, error=str(exc)))
            return
        self.post_message(
            HistoryPage(token, page.rows, page.cursor, append=append, problems=tuple(self.history.problems))
        )

    @on(HistoryPage)
    def show_page(self, message: HistoryPage) -> None:
        if message.token != self.token:
            return  # an answer to an older query
        self.loading_more = False
        if message.error:
            self._status(message.error, error=True)
            return
        table = self.query_one(DataTable)
        if not message.append:
            table.clear()
            self.rows = []
        known = {r["id"] for r in self.rows}
        for row in message.rows:
            if row["id"] not in known:
                self.rows.append(row)
                table.add_row(*self._cells(row), key=row["id"])
        self.cursor = message.cursor
        more = " · more below" if self.cursor else ""
        shown = (
            f"{len(self.rows)} shown{more}"
            if self.rows
            else "nothing matches"
            if not self.query_obj.empty
            else "no history yet: each run, eval and training run is saved here"
        )
        problems = f" · skipped: {'; '.join(message.problems)}" if message.problems else ""
        self._status(f"{shown} · enter opens in the editor{problems}", error=bool(message.problems))
        if not message.append:
            self._preview_row(0)

    def on_resize(self) -> None:
        """The output column takes the width the others leave (a wider cell would scroll off)."""
        table = self.query_one(DataTable)
        fixed = sum(w for _, key, w in COLUMNS if key != "output") + 2 * len(COLUMNS)
        width = max(10, table.size.width - fixed - 1)
        column = table.columns.get(ColumnKey("output"))
        if column is not None and column.width != width:
            column.width, column.auto_width = width, False
            table.refresh(layout=True)

    def _cells(self, row: dict[str, Any]) -> list[Any]:
        flags = ("*" if row.get("starred") else " ") + FLAGS.get(str(row.get("label")), " ")
        who = row.get("adapter") or row.get("model") or ""
        return [
            row["created_at"][5:16].replace("T", " "),
            flags,
            KIND_SHORT.get(str(row.get("kind")), "?"),
            who[:14],
            Text(row.get("prompt", "")),
            Text(row.get("output", "")),
        ]

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#history-status", Static)
        status.set_class(error, "error")
        status.update(Text(text), layout=False)  # one fixed-height line

    @on(DataTable.RowHighlighted, "#history-table")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._preview_row(event.cursor_row)
        if self.cursor and not self.loading_more and event.cursor_row >= len(self.rows) - 10:
            self.loading_more = True
            self._run_search(self.token, self.query_obj, self.cursor, True)

    # -- the highlighted record -------------------------------------------------------------------
    def _selected(self) -> dict[str, Any] | None:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _preview_row(self, index: int) -> None:
        if 0 <= index < len(self.rows):
            self._load_record(self.rows[index])
        else:
            self.record = None
            self.query_one("#history-preview", Static).update("")

    @work(thread=True, exclusive=True, group="history-record")
    def _load_record(self, row: dict[str, Any]) -> None:
        record = self.history.get(row["id"], shard=row.get("shard"))
        extra = ""
        if record and record.get("kind") == "train" and record.get("ref"):
            try:
                status = Runs(self.root).status(str(record["ref"]))
                extra = f"run now: {status.state} at step {status.step}" + (
                    f" ({status.error})" if status.error else ""
                )
            except TunelabError as exc:
                extra = str(exc)
        self.post_message(HistoryRecord(record, extra))

    @on(HistoryRecord)
    def show_record(self, message: HistoryRecord) -> None:
        record, selected = message.record, self._selected()
        preview = self.query_one("#history-preview", Static)
        if record is None:
            self.record = None
            preview.update("(record not found)")
            return
        row = next((r for r in self.rows if r["id"] == record["id"]), None)
        if row is not None:  # an edit: the row's flags follow the stored record
            row.update(tags=record.get("tags", []), starred=bool(record.get("starred")), label=label_of(record))
            self.query_one(DataTable).update_cell(row["id"], "flags", self._cells(row)[1])
        if selected is None or selected["id"] != record["id"]:
            return  # the cursor has moved on
        self.record = record
        text = Text()
        row = index_row(record)  # the same coerced fields as the list: any imported shape shows
        head = [
            row["kind"],
            row["status"] or "",
            row["created_at"][:19],
            row["model"] or "",
            f"lora {row['adapter']}" if row["adapter"] else "base" if row["kind"] == "generation" else "",
        ]
        text.append(" · ".join(h for h in head if h) + "\n", style="bold")
        facts = []
        if row["prompt_name"]:
            facts.append(f"prompt {row['prompt_name']}")
        if row["tokens"] is not None:
            facts.append(f"{row['tokens']} tok")
        if row["latency_s"] is not None:
            facts.append(f"{row['latency_s']:.2f}s")
        if row["tags"]:
            facts.append(" ".join(f"#{t}" for t in row["tags"]))
        if row["starred"]:
            facts.append("starred")
        if record.get("label"):
            facts.append(f"marked {record['label']}")
        if message.extra:
            facts.append(message.extra)
        if facts:
            text.append(" · ".join(facts) + "\n", style="dim")
        if record.get("params") and row["kind"] == "generation":
            text.append(
                "params " + json.dumps(record["params"], separators=(", ", "="), default=str) + "\n", style="dim"
            )
        for name in ("note", "system", "prompt", "rendered_prompt", "output", "correction", "error"):
            if record.get(name):
                text.append(f"\n{name.replace('_', ' ')}:\n", style="bold")
                text.append(str(record[name]) + "\n")
        preview.update(text)

    # -- actions ----------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, table.cursor_row + delta))

    def action_move_to(self, where: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=0 if where == 0 else max(0, table.row_count - 1))

    def action_copy(self, what: str) -> None:
        if self.record is None:
            return
        text = json.dumps(self.record, ensure_ascii=False) if what == "record" else str(self.record.get("output") or "")
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters).")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_focus_list(self) -> None:
        self.query_one(DataTable).focus()

    def action_focus_search(self) -> None:
        self.query_one("#history-query", Input).focus()

    @on(DataTable.RowSelected, "#history-table")
    def open_selected(self) -> None:
        selected = self._selected()
        if self.record is not None and selected and self.record["id"] == selected["id"]:
            self.dismiss(self.record)

    def _edit(self, **changes: Any) -> None:
        row = self._selected()
        if row is not None:
            self._save_edit(row["id"], row.get("shard"), changes)

    @work(thread=True, group="history-edit")
    def _save_edit(self, record_id: str, shard: int | None, changes: dict[str, Any]) -> None:
        try:
            record = self.history.update(record_id, shard=shard, **changes)
        except TunelabError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.post_message(HistoryRecord(record))

    def action_star(self) -> None:
        row = self._selected()
        if row is not None:
            self._edit(starred=not row.get("starred"))

    def action_label(self, value: str) -> None:
        row = self._selected()
        if row is not None:
            self._edit(label=None if row.get("label") == value else value)  # pressing it again clears it

    def _ask(self, question: str, value: str, done: Callable[[str], object], multiline: bool = False) -> None:
        if self._selected() is None:
            return

        def answered(answer: str | None) -> None:
            if answer is not None:
                done(answer)

        self.app.push_screen(AskScreen(question, value, multiline=multiline), answered)

    def action_tag(self) -> None:
        current = " ".join((self._selected() or {}).get("tags") or ())
        self._ask("Tags (space separated)", current, lambda answer: self._edit(tags=answer.split()))

    def action_note(self) -> None:
        current = (self.record or {}).get("note") or ""
        self._ask("Note", current, lambda answer: self._edit(note=answer.strip() or None))

    def action_correct(self) -> None:
        record = self.record or {}
        current = record.get("correction") or record.get("output") or ""
        self._ask(
            "Corrected output (an empty text removes the correction)",
            current,
            lambda answer: self._edit(correction=answer if answer.strip() else None),
            multiline=True,
        )

    @staticmethod
    def _when_given(then: Callable[[str], object]) -> Callable[[str | None], None]:
        """An answer callback that goes on only with a non-empty answer (stripped)."""

        def answered(answer: str | None) -> None:
            if answer and answer.strip():
                then(answer.strip())

        return answered

    def action_export(self) -> None:
        default = str(Path.home() / "tunelab-history.jsonl")
        self.app.push_screen(
            AskScreen("Export the matching records to (.jsonl or .csv)", default), self._when_given(self._export)
        )

    @work(thread=True, group="history-export")
    def _export(self, target: str) -> None:
        path = Path(target).expanduser()
        fmt = "csv" if path.suffix == ".csv" else "jsonl"
        try:
            count = export_history(self.history, self.query_obj, fmt, path)
        except TunelabError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"Exported {count} record(s) to {path}")

    def action_to_dataset(self) -> None:
        default = str(self.root / "datasets" / "labelled")
        self.app.push_screen(
            AskScreen(
                "Add the good and corrected outputs matching this search to the "
                "train split of (a dataset folder or .jsonl)",
                default,
            ),
            self._when_given(self._to_dataset),
        )

    @work(thread=True, group="history-export")
    def _to_dataset(self, target: str) -> None:
        try:
            count = add_to_dataset(self.history, self.query_obj, Path(target))
        except TunelabError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"Added {count} labelled example(s) to {target}")
