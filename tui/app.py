"""The tunelab app: prompt editor, training monitor and results on one screen.

Model work happens in the model worker child process (see `core.worker_client`); its events reach
the app as `ModelEvent` messages, and the handlers here own all state. Nothing here imports torch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Protocol

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input

from core import __version__, demo
from core.errors import TunelabError
from core.history import History
from core.paths import data_dir, logs_dir
from core.records import generation_record
from core.worker_client import ModelWorkerClient
from tui.messages import ModelEvent
from tui.themes import DEFAULT_THEME, shipped_themes
from tui.widgets.params_form import ParamsForm
from tui.widgets.prompt_pane import PromptPane
from tui.widgets.results_pane import ResultsPane
from tui.widgets.training_pane import TrainingPane


class ModelClient(Protocol):
    def load(self, model: str, **options: Any) -> None: ...
    def generate(self, prompt: str, params: dict[str, Any], *, system: str = "", mode: str = "auto") -> str: ...
    def cancel(self, rid: str) -> None: ...
    def close(self) -> None: ...


ClientFactory = Callable[[Callable[[dict[str, Any]], None]], ModelClient]


def default_client(on_event: Callable[[dict[str, Any]], None]) -> ModelClient:
    return ModelWorkerClient(on_event, logs_dir() / "model-worker.log")


class TunelabApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tunelab"
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run", priority=True),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, model: str = demo.MODEL_ALIAS, *, load_options: dict[str, Any] | None = None,
                 client_factory: ClientFactory = default_client, home: Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.load_options = load_options or {}
        self.client = client_factory(lambda event: self.post_message(ModelEvent(event)))
        self.history = History(home or data_dir())
        self.model_ready = False
        self.current: dict[str, Any] | None = None  # the request being generated and what it streamed

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PromptPane(self.model, id="prompt-pane")
                yield TrainingPane(id="training-pane")
            yield ResultsPane(id="results-pane")
        yield Footer()

    @property
    def results(self) -> ResultsPane:
        return self.query_one(ResultsPane)

    def on_mount(self) -> None:
        for theme in shipped_themes():
            self.register_theme(theme)
        self.theme = DEFAULT_THEME
        self.sub_title = f"v{__version__}"
        self.query_one("#prompt-text").focus()
        self.load_model(self.model)

    def load_model(self, model: str) -> None:
        self.model, self.model_ready = model, False
        self.results.set_status(f"loading {model}…")
        self.results.loading = True
        try:
            self.client.load(model, **self.load_options)
        except TunelabError as exc:
            self._model_failed(str(exc))

    @on(Input.Submitted, "#model-input")
    def model_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() and not self.current:
            self.load_model(event.value.strip())

    def action_run(self) -> None:
        if self.current is not None:
            self.notify("Already generating; esc cancels.", severity="warning")
            return
        pane = self.query_one(PromptPane)
        prompt = pane.text
        if not prompt.strip():
            self.notify("The prompt is empty.", severity="warning")
            return
        try:
            params = self.query_one(ParamsForm).params()
        except TunelabError as exc:
            self.results.set_status(str(exc), error=True)
            self.notify(str(exc), severity="error")
            return
        try:
            rid = self.client.generate(prompt, params.to_dict(), mode=pane.mode)
        except TunelabError as exc:
            self._model_failed(str(exc))
            return
        self.current = {"id": rid, "model": self.model, "prompt": prompt, "params": params.to_dict(),
                        "mode": pane.mode, "streamed": [], "rendered_prompt": "", "started_at": time.monotonic()}
        self.results.begin()
        if not self.model_ready:
            self.results.set_status(f"waiting for {self.model} to load…")

    def action_cancel(self) -> None:
        if self.current is not None:
            self.client.cancel(self.current["id"])
            self.results.set_status("cancelling…")

    @on(ModelEvent)
    def model_event(self, message: ModelEvent) -> None:
        event, kind = message.event, message.kind
        if kind == "ready":
            info = event["info"]
            self.model_ready = True
            self.results.loading = False
            self.sub_title = f"{info['model']} · {info['device']} · {info['dtype']} · {info['params_m']}M"
            if self.current is None:
                self.results.set_status(f"ready: {info['model']} loaded in {info['load_s']:.1f}s")
            return
        if kind == "crashed":
            self.model_ready = False
            self._finish_current(status="error", error=event["message"])
            self._model_failed(f"{event['message']} (restarts on the next run)")
            return
        if kind == "error" and event.get("op") == "load":
            self._model_failed(event["message"])
            if self.current is not None:
                self._finish_current(status="error", error=event["message"])
            return
        current = self.current
        if current is None or event.get("id") != current["id"]:
            return
        if kind == "started":
            current["rendered_prompt"] = event["rendered_prompt"]
            current["started_at"] = time.monotonic()
            self.results.set_status("generating… (esc cancels)")
        elif kind == "chunk":
            current["streamed"].append(event["text"])
            self.results.append(event["text"])
            self.results.progress(event.get("tokens", 0), time.monotonic() - current["started_at"])
        elif kind == "done":
            result = event["result"]
            self.results.finish(result)
            self._finish_current(status="cancelled" if result["stop_reason"] == "cancelled" else "done",
                                 result=result)
        elif kind == "error":
            self.results.set_status(event["message"], error=True)
            self._finish_current(status="error", error=event["message"])

    def _model_failed(self, message: str) -> None:
        self.results.loading = False
        self.results.set_status(message, error=True)
        self.sub_title = "no model"
        self.notify(message, severity="error", timeout=8)

    def _finish_current(self, *, status: str, result: dict[str, Any] | None = None,
                        error: str | None = None) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        record = generation_record(model=current["model"], prompt=current["prompt"], system="", mode=current["mode"],
                                   params=current["params"], result=result, status=status, error=error,
                                   partial_output="".join(current["streamed"]),
                                   rendered_prompt=current["rendered_prompt"])
        self.save_record(record)

    @work(thread=True, group="history", exclusive=False)
    def save_record(self, record: dict[str, Any]) -> None:
        try:
            self.history.add(record)
        except (OSError, TunelabError) as exc:
            self.call_from_thread(self.notify, f"history not saved: {exc}", severity="error")

    def on_unmount(self) -> None:
        if self.current is not None:  # quitting mid-stream: stop the work instead of waiting for it
            self.client.cancel(self.current["id"])
        self.client.close()
