"""The prompt editor pane: which model, the prompt template and system prompt, and how to sample.

The editor text is a template: `{{name}}` placeholders are filled from the dataset's rows in evals,
and from its first row in single runs. What is on screen is one `PromptVersion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.widgets import Input, Label, Select, TextArea

from core.engine.prompt import MODES
from core.errors import TunelabError
from tui.widgets.params_form import ParamsForm

if TYPE_CHECKING:
    from core.data.prompts import PromptVersion


class PromptPane(Vertical):
    BORDER_TITLE = "Prompt"
    HELP = (
        "The prompt is a template: {{name}} fills from the eval dataset's rows (the first row in a single "
        "run). mode chat applies the model's chat template, raw sends the text as is. The lora list "
        "offers finished training runs. <run> runs, <eval> evaluates, <rendered> shows the rendered "
        "prompt, <versions> the saved versions of this name, <edit-prompt> opens it in $EDITOR."
    )

    def __init__(self, model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.adapter_ids: list[str] = []  # the finished runs offered in the lora list

    def compose(self) -> ComposeResult:
        """The model field and the editor are in the first frame; the other fields mount just after it,
        in placeholders that hold their space (app.tcss), so nothing moves."""
        with Horizontal(classes="field-row"):
            yield Label("model", classes="param-label")
            yield Input(
                self.model, id="model-input", compact=True, tooltip="'demo', a local folder or a hub id; Enter loads it"
            )
            yield Lazy(
                Select(
                    [(m, m) for m in MODES],
                    value="auto",
                    allow_blank=False,
                    compact=True,
                    id="mode-select",
                    tooltip="chat applies the model's chat template; raw sends text as is",
                )
            )
        yield Lazy(
            Horizontal(
                Label("lora ", classes="param-label"),
                Select(
                    [],
                    prompt="none (base model)",
                    allow_blank=True,
                    compact=True,
                    id="adapter-select",
                    tooltip="a finished training run's adapter, hot-swapped in the model worker",
                ),
                classes="field-row",
            )
        )
        yield Lazy(
            Horizontal(
                Label("name", classes="param-label"),
                Input("untitled", id="prompt-name", compact=True, tooltip="versions are kept per name"),
                Label("system", classes="param-label"),
                Input(
                    "",
                    id="system-input",
                    compact=True,
                    placeholder="(none)",
                    tooltip="system prompt; may use {{variables}} too",
                ),
                classes="field-row",
            )
        )
        yield TextArea(
            id="prompt-text",
            soft_wrap=True,
            show_line_numbers=False,
            placeholder="Type a prompt ({{text}} fills from the dataset), then ctrl+r",
        )
        yield Lazy(ParamsForm(id="params"))

    @property
    def text(self) -> str:
        return self.query_one("#prompt-text", TextArea).text

    @text.setter
    def text(self, value: str) -> None:
        self.query_one("#prompt-text", TextArea).text = value

    @property
    def mode(self) -> str:
        return str(self.query_one("#mode-select", Select).value)

    @property
    def prompt_name(self) -> str:
        return self.query_one("#prompt-name", Input).value.strip() or "untitled"

    @property
    def adapter(self) -> str | None:
        select = self.query_one("#adapter-select", Select)
        return None if select.is_blank() else str(select.value)

    def set_adapters(self, options: list[tuple[str, str]]) -> None:
        """Offer these (label, run id) adapters, keeping the current choice when it is still there."""
        select = self.query_one("#adapter-select", Select)
        current = None if select.is_blank() else select.value
        select.set_options(options)
        self.adapter_ids = [value for _, value in options]
        if any(value == current for _, value in options):
            select.value = current

    def load_record(self, record: dict[str, Any]) -> None:
        """Put a history record's prompt, system, mode, name, params and adapter back in the editor
        (an imported record may have odd types: text fields become text, odd params are skipped)."""

        def text(name: str) -> str:
            value = record.get(name)
            return "" if value is None else str(value)

        self.text = text("template") or text("prompt")
        self.query_one("#system-input", Input).value = text("system")
        if record.get("mode") in MODES:
            self.query_one("#mode-select", Select).value = record["mode"]
        if record.get("prompt_name"):
            self.query_one("#prompt-name", Input).value = text("prompt_name")
        params = record.get("params")
        self.query_one(ParamsForm).set_params(params if isinstance(params, dict) else {})
        select = self.query_one("#adapter-select", Select)
        adapter = record.get("adapter")
        if adapter is None:
            select.clear()
        elif adapter in self.adapter_ids:
            select.value = adapter

    def state(self) -> dict[str, Any]:
        """What is on screen, as `load_record` takes it back (kept across a restart); bad params are left out."""
        try:
            params = self.query_one(ParamsForm).params().to_dict()
        except TunelabError:
            params = {}
        return {
            "prompt_name": self.prompt_name,
            "template": self.text,
            "system": self.query_one("#system-input", Input).value,
            "mode": self.mode,
            "params": params,
            "adapter": self.adapter,
        }

    def version(self) -> PromptVersion:
        """The prompt on screen; raises TunelabError naming the bad template or parameter."""
        from core.data.prompts import PromptVersion

        return PromptVersion(
            self.text,
            self.query_one("#system-input", Input).value,
            self.mode,
            self.query_one(ParamsForm).params().to_dict(),
        )
