"""The prompt editor pane: which model, the prompt template and system prompt, and how to sample.

The editor text is a template: `{{name}}` placeholders are filled from the dataset's rows in evals,
and from its first row in single runs. What is on screen is one `PromptVersion`. The pane keeps it for
the next start (written off the UI loop) and offers the finished adapters, read by its own workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.timer import Timer
from textual.widgets import Input, Label, Select, TextArea

from core.engine.prompt import MODES
from core.errors import TunelabError
from tui.commands import Bind, Command
from tui.messages import AdaptersFound, OptimizeAsked, PromptRendered, WorkbenchFailed, WorkerError, worker_message
from tui.widgets.params_form import ParamsForm

if TYPE_CHECKING:
    from core.data.prompts import PromptVersion
    from core.engine import protocol as wire
    from core.evals.plan import EvalRequest
    from core.workbench.adapters import Adapter
    from tui.app import TunelabApp


class PromptPane(Vertical):
    BORDER_TITLE = "Prompt"
    HELP = (
        "The prompt is a template: {{name}} fills from the eval dataset's rows (the first row in a single "
        "run). mode chat applies the model's chat template, raw sends the text as is. shots puts that many "
        "labelled training rows before each item as demonstrations, chosen by select (random: the same rows "
        "every time; similar: each item's most similar rows). The lora list offers finished training runs. "
        "<run> runs, <eval> evaluates, <rendered> shows the rendered prompt (demonstrations included), "
        "<versions> the saved versions of this name, <edit-prompt> opens it in $EDITOR, <optimize> searches "
        "demonstrations and instructions for it on the dev rows."
    )
    BINDINGS = [
        Bind("f5", "optimize", "Optimize", id="optimize", show=False, palette="prompt: Optimize this prompt",
             tooltip="search demonstrations and instructions on the dev rows, live"),
    ]  # fmt: skip

    def __init__(self, model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.adapter_ids: list[str] = []  # the finished runs offered in the lora list
        self.adapters: list[Adapter] = []
        self.editor_state: dict[str, Any] | None = None  # the prompt on screen, changed and not yet kept
        self.editor_timer: Timer | None = None
        self.editor_ready = False  # the kept prompt has been read (changes before that are the start's own)

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
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    # -- the prompt kept for the next start ---------------------------------------------------------
    @on(TextArea.Changed, "#prompt-text")
    @on(Input.Changed, "#prompt-name, #system-input, .param-input")
    @on(Select.Changed, "#mode-select, #adapter-select, #param-select")
    def editor_changed(self) -> None:
        """The prompt on screen is kept for the next start: captured now, written a second after the last
        change (off the loop), and at exit if that second has not passed."""
        if not self.editor_ready:  # the fields filling at start, before the kept prompt is back
            return
        self.editor_state = self.state()
        if self.editor_timer is not None:
            self.editor_timer.stop()
        self.editor_timer = self.set_timer(1.0, self._remember_later)

    def _remember_later(self) -> None:
        self.run_worker(self.remember, thread=True, group="editor", exclusive=True)

    def remember(self) -> None:
        state, self.editor_state = self.editor_state, None
        if state is not None:
            try:
                self.tunelab.workbench.remember_editor(state)
            except (OSError, TunelabError):
                pass  # a prompt not kept for the next start is no reason to interrupt anything

    def restore(self, state: dict[str, Any], busy: bool) -> None:
        """The prompt kept at the last exit comes back, unless something was typed or run already."""
        self.editor_ready = True
        if not state or self.text or busy:  # typed into already: the new text wins
            return
        self.load_record({**state, "adapter": None})
        adapter = state.get("adapter")
        if isinstance(adapter, str) and adapter and not self.tunelab.options.adapter:
            self.refresh_adapters(select=adapter)

    # -- the adapters offered -----------------------------------------------------------------------
    @work(thread=True, group="adapters", exclusive=True)
    def refresh_adapters(self, select: str | None = None) -> None:
        """Finished runs' adapters, newest first (read off the UI loop)."""
        try:
            found = self.tunelab.workbench.adapters.listed()
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(f"cannot list adapters: {exc}"))
            return
        self.post_message(AdaptersFound(found, select))

    @on(AdaptersFound)
    def adapters_found(self, message: AdaptersFound) -> None:
        self.adapters = message.adapters
        self.set_adapters([(a.label, a.run_id) for a in message.adapters])
        if message.select:
            if message.select in self.adapter_ids:
                self.use_adapter(message.select)
            else:
                self.notify(f"LoRA {message.select} is not a finished training run here.", severity="warning")

    def use_adapter(self, adapter: str | None) -> None:
        select = self.query_one("#adapter-select", Select)
        if adapter is None:
            select.clear()
        else:
            select.value = adapter
        label = next((a.label for a in self.adapters if a.run_id == adapter), str(adapter)[:10])
        self.notify(f"Next runs use {'LoRA ' + label if adapter else 'the base model'}.")

    def ask_adapter_folder(self) -> None:
        from tui.screens.ask import AskScreen

        def add(path: str | None) -> None:
            if path and path.strip():
                self.add_adapter_folder(path.strip())

        self.app.push_screen(AskScreen("A PEFT adapter folder (with adapter_config.json) to offer as a LoRA", ""), add)

    @work(thread=True, group="adapter-folder", exclusive=True)
    def add_adapter_folder(self, path: str) -> None:
        try:
            adapter = self.tunelab.workbench.adapters.add_adapter_folder(path)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.refresh_adapters(select=adapter.run_id)

    def palette_commands(self) -> Iterator[Command]:
        """The model field and the lora list in the palette: each finished adapter by name."""
        from core.workbench.adapters import ELSEWHERE

        yield Command(
            "model: Switch model", "type a model: demo, a folder or a hub id", self.query_one("#model-input").focus
        )
        yield Command(
            "model: Add a LoRA folder",
            "a PEFT adapter made elsewhere, offered in the lora list",
            self.ask_adapter_folder,
        )
        yield Command("model: Use the base model", "no LoRA adapter", partial(self.use_adapter, None))
        for adapter in self.adapters:
            what = "an adapter folder from elsewhere" if adapter.trained_on == ELSEWHERE else "a finished run's adapter"
            yield Command(f"model: Use LoRA {adapter.label}", what, partial(self.use_adapter, adapter.run_id))

    def action_optimize(self) -> None:
        self.post_message(OptimizeAsked())

    # -- the rendered prompt (ctrl+t) -----------------------------------------------------------------------
    @work(thread=True, group="render", exclusive=True)
    def show_rendered(self, version: PromptVersion, request: EvalRequest) -> None:
        """`version` filled from the eval form's dataset (off the UI loop) and rendered by the model worker;
        its answer comes back to this pane."""
        app = self.tunelab
        try:
            prompt = app.workbench.fill_prompt(version, request.selection)
            app.client.render(prompt.to_dict(), self._render_event)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))

    def _render_event(self, event: wire.Event) -> None:
        if (message := worker_message(event, "render")) is not None:
            self.post_message(message)

    @on(PromptRendered)
    def rendered(self, message: PromptRendered) -> None:
        from tui.screens.rendered import RenderedScreen

        self.app.push_screen(RenderedScreen(message.event.text, message.event.tokens, message.event.note))

    @on(WorkerError)
    def render_failed(self, message: WorkerError) -> None:
        self.post_message(WorkbenchFailed(message.event.message))

    # -- what is on screen ------------------------------------------------------------------------------
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
        params, form = record.get("params"), self.query_one(ParamsForm)
        form.set_params(params if isinstance(params, dict) else {})
        form.set_shots(record.get("shots"))
        select = self.query_one("#adapter-select", Select)
        adapter = record.get("adapter")
        if adapter is None:
            select.clear()
        elif adapter in self.adapter_ids:
            select.value = adapter

    def state(self) -> dict[str, Any]:
        """What is on screen, as `load_record` takes it back (kept across a restart); bad params are left out."""
        form = self.query_one(ParamsForm)
        try:
            params = form.params().to_dict()
        except TunelabError:
            params = {}
        try:
            shots = form.shots()
        except TunelabError:
            shots = None
        return {
            "prompt_name": self.prompt_name,
            "template": self.text,
            "system": self.query_one("#system-input", Input).value,
            "mode": self.mode,
            "params": params,
            "adapter": self.adapter,
            "shots": shots.to_dict() if shots else None,
        }

    def version(self) -> PromptVersion:
        """The prompt on screen; raises TunelabError naming the bad template or parameter."""
        from core.data.prompts import PromptVersion

        form = self.query_one(ParamsForm)
        return PromptVersion(
            self.text, self.query_one("#system-input", Input).value, self.mode, form.params().to_dict(), form.shots()
        )

    def load_version(self, version: PromptVersion) -> None:
        """A stored version in the editor (its template, system, mode, params and shots), on the same LoRA."""
        self.load_record({**version.to_dict(), "adapter": self.adapter})  # to_dict has shots when it demonstrates
