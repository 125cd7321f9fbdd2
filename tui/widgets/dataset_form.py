"""The dataset form: which data, which split, how it is graded and how many times. An eval runs over it, a
generation fills its template from the data's first row, a training run trains on its dataset and field
mapping. The main screen composes it (at the top of the Eval tab) and reads it (`request`); no pane does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label

from core.errors import TunelabError

if TYPE_CHECKING:
    from core.evals.plan import EvalRequest


class DatasetForm(Horizontal):
    DEFAULT_CSS = """
    DatasetForm {
        #eval-dataset { width: 1fr; }
        #eval-split { width: 7; }
        #eval-grader { width: 1fr; }
        #eval-repeat { width: 4; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("data", classes="param-label")
        yield Input(
            "demo",
            id="eval-dataset",
            compact=True,
            tooltip="'demo', a folder of splits, or a file; then expected=FIELD and VAR=FIELD to map fields",
        )
        yield Label("split", classes="param-label")
        yield Input("auto", id="eval-split", compact=True)
        yield Label("grader", classes="param-label")
        yield Input("labels", id="eval-grader", compact=True, tooltip="exact, labels, contains:x, regex:p, json, chrf…")
        yield Label("x", classes="param-label")
        yield Input("1", id="eval-repeat", compact=True, tooltip="repeats per item (seed, seed+1, …)")

    def request(self) -> EvalRequest:
        """The eval as the form describes it; a bad repeat count is an error naming the field."""
        from core.evals.plan import EvalRequest
        from tui.cli.parsing import parse_data_field

        split = self.query_one("#eval-split", Input).value.strip()
        repeat = self.query_one("#eval-repeat", Input).value.strip() or "1"
        if not repeat.isdigit():
            raise TunelabError(f"repeat must be a whole number, got '{repeat}'")
        spec, expected, mapping = parse_data_field(self.query_one("#eval-dataset", Input).value)
        return EvalRequest(
            spec,
            None if split in {"", "all"} else split,
            self.query_one("#eval-grader", Input).value.strip() or "exact",
            int(repeat),
            expected=expected,
            mapping=mapping,
        )
