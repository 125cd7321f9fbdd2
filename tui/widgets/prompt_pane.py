"""The prompt editor pane: which model, what to say, and how to sample."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, TextArea

from tui.widgets.params_form import ParamsForm

MODES = ("auto", "chat", "raw")


class PromptPane(Vertical):
    BORDER_TITLE = "Prompt"

    def __init__(self, model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model

    def compose(self) -> ComposeResult:
        with Horizontal(id="model-row"):
            yield Label("model", classes="param-label")
            yield Input(self.model, id="model-input", compact=True,
                        tooltip="'demo', a local folder or a hub id; Enter loads it")
            yield Select([(m, m) for m in MODES], value="auto", allow_blank=False, compact=True,
                         id="mode-select", tooltip="chat applies the model's chat template; raw sends text as is")
        yield TextArea(id="prompt-text", soft_wrap=True, show_line_numbers=False,
                       placeholder="Type a prompt, then ctrl+r to run")
        yield ParamsForm(id="params")

    @property
    def text(self) -> str:
        return self.query_one("#prompt-text", TextArea).text

    @property
    def mode(self) -> str:
        return str(self.query_one("#mode-select", Select).value)

    @text.setter
    def text(self, value: str) -> None:
        self.query_one("#prompt-text", TextArea).text = value
