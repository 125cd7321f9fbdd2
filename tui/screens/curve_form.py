"""What a data-budget curve run from the TUI asks (`compare --budget SIZES --seeds K --train-epochs E`): the
sizes, the seeds (LoRAs per size) and the epochs over all the training rows, whose steps every size's LoRA may
take (early stopping on dev ends it sooner).
A bad field is one line naming it, and the form stays."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.errors import TunelabError
from core.evals.budget_curve import parse_sizes
from core.training.config import TRAIN_OPTIONS, TrainConfig
from core.workbench.compare import MAX_SEEDS

SIZES = "16,64,all"  # the sizes offered
EPOCHS = next(o for o in TRAIN_OPTIONS if o.name == "epochs")


class CurveForm(ModalScreen[dict | None]):
    """Returns `{"sizes": "16,64,all", "seeds": 1, "epochs": 6.0}`, or None."""

    DEFAULT_CSS = """
    CurveForm {
        align: center middle;
        #curve-box { width: 64; height: auto; border: round $primary; background: $surface; padding: 0 1; }
        #curve-grid { grid-size: 2; grid-columns: 18 1fr; height: auto; }
        #curve-error { color: $error; height: auto; }
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close", id="curve-close"),
        Binding("enter", "submit", "Run", id="curve-submit", priority=True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="curve-box"):
            yield Label("Data-budget curve · enter runs · esc closes")
            with Grid(id="curve-grid"):
                yield Label("labelled rows")
                yield Input(SIZES, id="curve-sizes", compact=True, tooltip="row counts, 'all': every training row")
                yield Label("seeds")
                yield Input("1", id="curve-seeds", compact=True, tooltip="LoRAs per size, each on its own seed")
                yield Label("epochs (all rows)")
                yield Input(
                    EPOCHS.shown(TrainConfig().epochs),
                    id="curve-epochs",
                    compact=True,
                    tooltip="passes over all the training rows: each size gets as many steps, and stops early on dev",
                )
            yield Static("", id="curve-error")

    def on_mount(self) -> None:
        self.query_one("#curve-sizes", Input).focus()

    def settings(self) -> dict:
        """Each field read and checked as the command line reads its flag; an error names the field."""
        sizes = self.query_one("#curve-sizes", Input).value.strip()
        parse_sizes(sizes)
        seeds_text = self.query_one("#curve-seeds", Input).value.strip()
        if not (seeds_text.isascii() and seeds_text.isdigit()) or not 1 <= int(seeds_text) <= MAX_SEEDS:
            raise TunelabError(f"seeds must be a whole number from 1 to {MAX_SEEDS}, got '{seeds_text}'")
        epochs = EPOCHS.parse(self.query_one("#curve-epochs", Input).value)
        problem = EPOCHS.problem(epochs)
        if problem:
            raise TunelabError(problem)
        return {"sizes": sizes, "seeds": int(seeds_text), "epochs": epochs}

    def action_submit(self) -> None:
        try:
            settings = self.settings()
        except TunelabError as exc:
            worded = exc.worded(lambda name: "labelled rows" if name == "budget" else name.replace("_", " "))
            self.query_one("#curve-error", Static).update(worded)
            return
        self.dismiss(settings)
