"""The new-run form: the training options declared with a place on it (`form=`, core/training/config.py);
everything else keeps `TrainConfig`'s defaults. A sweep grid (`train --sweep`'s) makes it a sweep of runs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Static

from core.errors import TunelabError
from core.training.config import TRAIN_OPTIONS, TrainConfig
from core.training.sweeps import MAX_RUNS, parse_grid

FORM = sorted((o for o in TRAIN_OPTIONS if o.form is not None), key=lambda o: o.form or 0)  # declared with a place
INPUTS = tuple(o for o in FORM if o.kind is not bool)  # a grid of label and value, two to a row
SWITCHES = tuple(o for o in FORM if o.kind is bool)  # the memory and LoRA options, off by default
NPROC = next(o for o in TRAIN_OPTIONS if o.name == "nproc")  # beside the sweep: its runs at once


def _switch_label(label: str, on: bool) -> str:
    """The state in words as well: the checkbox glyph alone reads the same on and off in some themes."""
    return f"{label} {'on' if on else 'off'}"


class TrainForm(ModalScreen[dict | None]):
    """Returns the settings as a dict (the caller adds model, dataset and template), or None.

    A blank max steps trains for the epochs; a blank eval split skips the eval loss; a sweep grid
    (`learning_rate=1e-4,3e-4 lora_r=8,16`) trains a run per combination of its values instead of one, `at once`
    of them at a time (one GPU each; `train --sweep --nproc`).
    """

    DEFAULT_CSS = """
    TrainForm {
        align: center middle;
        #train-box { width: 76; height: auto; border: round $primary; background: $surface; padding: 0 1; }
        #train-grid { grid-size: 4; grid-columns: 16 1fr 16 1fr; height: auto; grid-gutter: 0 1; }
        #train-switches { height: auto; }
        #train-switches Checkbox { margin-right: 2; }
        #train-sweep-row { height: 1; }
        #train-sweep-row Label { width: 17; }
        #train-sweep-row Input { width: 1fr; }
        #train-sweep-row #train-nproc { width: 5; }
        #train-sweep-row .at-once { width: 9; padding-left: 1; }
        #train-error { color: $error; height: auto; }
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close", id="close-train"),
        Binding("enter", "submit", "Start", id="start-train", priority=True),  # on the checkbox too: space toggles
    ]

    def __init__(self, dataset: str, prompt_name: str, linear_modules: list[str] | None = None) -> None:
        super().__init__()
        self.dataset, self.prompt_name = dataset, prompt_name
        self.linear_modules = linear_modules or []

    def compose(self) -> ComposeResult:
        with Vertical(id="train-box"):
            yield Label(f"New LoRA run on {self.dataset} · enter starts · esc closes")
            with Grid(id="train-grid"):
                for option in INPUTS:
                    yield Label(option.label or option.name)
                    yield Input(option.shown(option.default), id=f"train-{option.name}", compact=True)
            if self.linear_modules:
                yield Static(
                    f"linear modules: all-linear or any of {', '.join(self.linear_modules)}", id="train-linear"
                )
            with Horizontal(id="train-sweep-row"):
                yield Label("sweep")
                yield Input(placeholder="none, or learning_rate=1e-4,3e-4 lora_r=8,16", id="train-sweep", compact=True)
                yield Label("at once", classes="at-once")
                yield Input("1", id="train-nproc", compact=True, tooltip="a sweep's runs at once, one GPU each")
            with Horizontal(id="train-switches"):
                for option in SWITCHES:
                    label, on = option.label or option.name, bool(option.default)
                    yield Checkbox(_switch_label(label, on), on, id=f"train-{option.name}", compact=True, name=label)
            yield Checkbox(self._use_prompt_label(False), id="train-use-prompt")
            yield Static("", id="train-error")

    def _use_prompt_label(self, on: bool) -> str:
        """Says the choice in words: the checkbox glyph alone reads the same on and off in some themes."""
        if on:
            return f"space: examples rendered with the prompt '{self.prompt_name}' (ON)"
        return f"space: examples as they are, no prompt (OFF: render with '{self.prompt_name}')"

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "train-use-prompt":
            event.checkbox.label = self._use_prompt_label(event.value)
        else:
            event.checkbox.label = _switch_label(str(event.checkbox.name), event.value)

    def settings(self) -> dict:
        """Each field read by its declaration (core/training/config.py); its bounds are `TrainConfig`'s to check."""
        out = {option.name: option.parse(self.query_one(f"#train-{option.name}", Input).value) for option in INPUTS}
        out.update({option.name: self.query_one(f"#train-{option.name}", Checkbox).value for option in SWITCHES})
        out["use_prompt"] = self.query_one("#train-use-prompt", Checkbox).value
        out["sweep"] = self.query_one("#train-sweep", Input).value.strip()
        out["nproc"] = NPROC.parse(self.query_one("#train-nproc", Input).value)
        return out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        try:
            settings = self.settings()
            config = TrainConfig(**{k: v for k, v in settings.items() if k not in ("use_prompt", "sweep")})
            if self.linear_modules:
                config.check_targets(self.linear_modules)
            if settings["sweep"] and (size := parse_grid(settings["sweep"]).size) > MAX_RUNS:
                raise TunelabError(f"sweep makes {size} runs, more than {MAX_RUNS}: give fewer values")
            if settings["nproc"] > 1 and not settings["sweep"]:
                raise TunelabError("at once: more than 1 trains a sweep's runs at once: give a sweep grid too")
        except TunelabError as exc:
            self.query_one("#train-error", Static).update(str(exc))
            return
        self.dismiss(settings)
