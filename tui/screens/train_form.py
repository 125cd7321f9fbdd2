"""The new-run form: the main LoRA settings; everything else keeps `TrainConfig`'s defaults."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Static

from core.errors import TunelabError
from core.training.config import TrainConfig

FIELDS = (  # (TrainConfig field, label, type)
    ("split", "train split", str),
    ("eval_split", "eval split", str),
    ("epochs", "epochs", float),
    ("max_steps", "max steps", int),
    ("learning_rate", "learning rate", float),
    ("lora_r", "LoRA r", int),
    ("lora_alpha", "LoRA alpha", int),
    ("lora_dropout", "LoRA dropout", float),
    ("batch_size", "batch size", int),
    ("grad_accum", "grad accum", int),
    ("max_seq_len", "max seq len", int),
    ("eval_every", "eval every", int),
    ("eval_items", "pass-rate rows", int),
    ("eval_grader", "pass-rate grader", str),
    ("save_every", "save every", int),
    ("seed", "seed", int),
    ("schedule", "schedule", str),
    ("target_modules", "target modules", str),
    ("modules_to_save", "modules to save", str),
)
LISTS = {"target_modules", "modules_to_save"}  # comma lists (target_modules may be "all-linear")
SWITCHES = (  # (TrainConfig field, label): the memory and LoRA options, off by default
    ("gradient_checkpointing", "checkpointing"),
    ("packing", "packing"),
    ("use_dora", "DoRA"),
    ("use_rslora", "rsLoRA"),
)


def _switch_label(label: str, on: bool) -> str:
    """The state in words as well: the checkbox glyph alone reads the same on and off in some themes."""
    return f"{label} {'on' if on else 'off'}"


class TrainForm(ModalScreen[dict | None]):
    """Returns the settings as a dict (the caller adds model, dataset and template), or None.

    A blank max steps trains for the epochs; a blank eval split skips the eval loss.
    """

    DEFAULT_CSS = """
    TrainForm {
        align: center middle;
        #train-box { width: 76; height: auto; border: round $primary; background: $surface; padding: 0 1; }
        #train-grid { grid-size: 4; grid-columns: 16 1fr 16 1fr; height: auto; grid-gutter: 0 1; }
        #train-switches { height: auto; }
        #train-switches Checkbox { margin-right: 2; }
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
        defaults = TrainConfig()
        with Vertical(id="train-box"):
            yield Label(f"New LoRA run on {self.dataset} · enter starts · esc closes")
            with Grid(id="train-grid"):
                for name, label, _ in FIELDS:
                    value = getattr(defaults, name)
                    shown = ",".join(value) if isinstance(value, tuple) else "" if value is None else str(value)
                    yield Label(label)
                    yield Input(shown, id=f"train-{name}", compact=True)
            if self.linear_modules:
                yield Static(
                    f"linear modules: all-linear or any of {', '.join(self.linear_modules)}", id="train-linear"
                )
            with Horizontal(id="train-switches"):
                for name, label in SWITCHES:
                    on = getattr(defaults, name)
                    yield Checkbox(_switch_label(label, on), on, id=f"train-{name}", compact=True, name=label)
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
        out: dict = {}
        for name, _, kind in FIELDS:
            raw = self.query_one(f"#train-{name}", Input).value.strip()
            if name in LISTS:
                items = tuple(x.strip() for x in raw.split(",") if x.strip())
                out[name] = raw if raw == "all-linear" else items
                continue
            if not raw:
                if name in {"max_steps", "eval_every", "save_every", "eval_split"}:
                    out[name] = None
                    continue
                raise TunelabError(f"{name} needs a value")
            try:
                out[name] = kind(raw)
            except ValueError:
                raise TunelabError(
                    f"{name} must be {'a whole number' if kind is int else 'a number'}, got '{raw}'"
                ) from None
        for name, _ in SWITCHES:
            out[name] = self.query_one(f"#train-{name}", Checkbox).value
        out["use_prompt"] = self.query_one("#train-use-prompt", Checkbox).value
        return out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        try:
            settings = self.settings()
            config = TrainConfig(**{k: v for k, v in settings.items() if k != "use_prompt"})
            if self.linear_modules:
                config.check_targets(self.linear_modules)
        except TunelabError as exc:
            self.query_one("#train-error", Static).update(str(exc))
            return
        self.dismiss(settings)
