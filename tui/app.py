"""The tunelab app: prompt editor, training monitor and results (output and eval matrix) on one screen.

Model work happens in the model worker child process (see `core.worker_client`); its events reach
the app as messages, and the handlers here own all state. Evals run in a thread worker that talks to
the same child. Nothing here imports torch.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.widgets import Footer, Header, Input, Select, TabbedContent, TabPane

from core import __version__, demo
from core.datasets import load_dataset
from core.errors import TunelabError
from core.evals import EvalRequest, EvalRuns, Variant, WorkerBackend, run_eval
from core.generation import Prompt
from core.history import History
from core.paths import data_dir, logs_dir
from core.prompts import PromptStore, PromptVersion
from core.records import generation_record
from core.templates import Template
from core.worker_client import ModelWorkerClient
from tui.messages import EvalFinished, EvalProgress, EvalRow, ModelEvent, Rendered
from core.adapters import resolve_adapter
from core.config import config_path, load_config, save_setting, themes_dir
from core.training.config import TrainConfig
from core.training.runs import Runs
from tui.commands import TunelabCommands
from tui.screens.ask import AskScreen
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.rendered import RenderedScreen
from tui.screens.train_form import TrainForm
from tui.screens.versions import VersionsScreen
from tui.themes import DEFAULT_THEME, folder_stamp, shipped_themes, user_themes
from tui.widgets.eval_pane import EvalPane
from tui.widgets.prompt_pane import PromptPane
from tui.widgets.results_pane import ResultsPane
from tui.widgets.training_pane import TrainingPane


def binding_ids() -> set[str]:
    """Every binding id a user may remap in config.toml's [keys]."""
    owners = (TunelabApp, EvalPane, TrainingPane, ResultsPane, HistoryScreen, VersionsScreen, RenderedScreen,
              TrainForm, AskScreen, HelpScreen)
    return {b.id for owner in owners for b in owner.BINDINGS if isinstance(b, Binding) and b.id}


class ModelClient(Protocol):
    def load(self, model: str, **options: Any) -> None: ...
    def generate(self, prompt: str, params: dict[str, Any], *, system: str = "", mode: str = "auto",
                 adapter: str | None = None) -> str: ...
    def batch(self, prompts: list[dict[str, Any]], params: dict[str, Any], listener: Callable,
              batch_size: int = 16, adapter: str | None = None) -> str: ...
    def render(self, prompt: dict[str, Any], listener: Callable) -> str: ...
    def cancel(self, rid: str) -> None: ...
    def close(self) -> None: ...


ClientFactory = Callable[[Callable[[dict[str, Any]], None]], ModelClient]


def default_client(on_event: Callable[[dict[str, Any]], None]) -> ModelClient:
    return ModelWorkerClient(on_event, logs_dir() / "model-worker.log")


class TunelabApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tunelab"
    COMMANDS = App.COMMANDS | {TunelabCommands}
    HELP = ("tunelab: the prompt on the left (ctrl+r runs, ctrl+g evaluates), training below it (ctrl+n), "
            "results and the eval matrix on the right, history on f8, every action in the palette (ctrl+p). "
            "f6 zooms the focused pane, f7 stacks the panes, f4 edits the prompt in $EDITOR.")
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run", priority=True),
        Binding("ctrl+g", "eval", "Eval", id="eval", priority=True),
        Binding("ctrl+t", "rendered", "Rendered", id="rendered", priority=True, show=False),
        Binding("ctrl+o", "versions", "Versions", id="versions", priority=True, show=False),
        Binding("ctrl+n", "train", "Train", id="train", priority=True),
        Binding("f8", "history", "History", id="history", priority=True),
        Binding("f1", "help", "Help", id="help", priority=True),  # priority: text areas bind f6/f7 themselves
        Binding("f4", "edit_prompt", "Editor", id="edit-prompt", show=False, priority=True),
        Binding("f6", "zoom", "Zoom", id="zoom", show=False, priority=True),
        Binding("f7", "toggle_layout", "Layout", id="toggle-layout", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, model: str = demo.MODEL_ALIAS, *, load_options: dict[str, Any] | None = None,
                 client_factory: ClientFactory = default_client, home: Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.load_options = load_options or {}
        self.client = client_factory(lambda event: self.post_message(ModelEvent(event)))
        self.root = home or data_dir()
        self.history = History(self.root)
        self.prompts = PromptStore(self.root)
        self.model_ready = False
        self.linear_modules: list[str] = []  # offered as LoRA targets in the new-run form
        self.current: dict[str, Any] | None = None  # the single run being generated and what it streamed
        self.eval_token: str | None = None  # the eval run in progress
        self.eval_cancel = threading.Event()
        self.tokens = itertools.count(1)
        self.problems: list[str] = []  # config and theme problems, shown once the screen is up
        self._apply_config()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PromptPane(self.model, id="prompt-pane")
                yield TrainingPane(self.root, id="training-pane")
            with TabbedContent(id="right"):
                with TabPane("Output", id="tab-output"):
                    yield ResultsPane(id="results-pane")
                with TabPane("Eval", id="tab-eval"):
                    yield Lazy(EvalPane(id="eval-pane"))  # hidden at start: mounted after the first frame
        yield Footer()

    @property
    def results(self) -> ResultsPane:
        return self.query_one(ResultsPane)

    @property
    def evals(self) -> EvalPane:
        return self.query_one(EvalPane)

    def _apply_config(self) -> None:
        """Themes (shipped, then the user's), the chosen theme and the user's keymap, before the first
        frame: a theme set later restyles every widget. Problems fall back to defaults, never stop the app."""
        config = load_config()
        self.problems += config.problems
        for theme in shipped_themes():
            self.register_theme(theme)
        self._themes_stamp = folder_stamp(themes_dir())
        themes, problems = user_themes(themes_dir())
        self.problems += problems
        for theme in themes:
            self.register_theme(theme)
        wanted = config.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.problems.append(f"{config_path()}: theme '{wanted}' is not installed; using {DEFAULT_THEME}")
            wanted = DEFAULT_THEME
        self.theme = wanted
        known = binding_ids()
        for binding_id in sorted(set(config.keys) - known):
            self.problems.append(f"{config_path()}: keys.{binding_id} is not a binding id "
                                 f"(see F1 for the ids); ignored")
        self.set_keymap({k: v for k, v in config.keys.items() if k in known})

    def _theme_chosen(self, theme) -> None:
        """The palette's theme switcher (or any change) persists the choice in config.toml."""
        try:
            save_setting("theme", theme.name)
        except TunelabError as exc:
            self.notify(str(exc), severity="warning")

    def _reload_user_themes(self) -> None:
        """Hot reload: a theme file added or edited in the user themes dir applies without a restart."""
        stamp = folder_stamp(themes_dir())
        if stamp == self._themes_stamp:
            return
        self._themes_stamp = stamp
        themes, problems = user_themes(themes_dir())
        for problem in problems:
            self.notify(problem, severity="warning", timeout=8)
        for theme in themes:
            self.register_theme(theme)
            if theme.name == self.theme:
                self.refresh_css()

    def on_mount(self) -> None:
        for problem in self.problems:
            self.notify(problem, severity="warning", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_chosen)
        self.set_interval(2.0, self._reload_user_themes)
        self.sub_title = f"v{__version__}"
        self.query_one("#prompt-text").focus()
        self.refresh_adapters()
        self.load_model(self.model)

    MAIN_ONLY = {"run", "eval", "rendered", "versions", "train", "history", "edit_prompt", "zoom", "toggle_layout"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Workbench keys act on the main screen only; over a dialog or the history they pass through."""
        if action in self.MAIN_ONLY and len(self.screen_stack) > 1:
            return False
        if action == "help" and isinstance(self.screen, HelpScreen):
            return False
        return True

    @on(TrainingPane.RunEnded)
    def run_ended(self, message: TrainingPane.RunEnded) -> None:
        severity = "error" if message.state == "failed" else "information"
        self.notify(f"Training run {message.run_id[:10]} {message.state}.", severity=severity)
        self.refresh_adapters()

    def _out_of_sight(self, pane_id: str) -> bool:
        """True when `pane_id`'s tab is not shown: another tab, a dialog or history on top, another pane zoomed."""
        maximized = self.screen_stack[0].maximized
        return (len(self.screen_stack) > 1 or self.query_one(TabbedContent).active != pane_id
                or (maximized is not None and maximized is not self.query_one(TabbedContent)))

    def refresh_adapters(self) -> None:
        """Finished runs' adapters, newest first, offered in the prompt pane."""
        options = []
        for status in Runs(self.root).list():
            if status["state"] == "done" and status.get("adapter"):
                loss = f" eval {status['eval_loss']:.3f}" if status.get("eval_loss") is not None else ""
                options.append((f"{status['id'][:10]}{loss}", status["id"]))
        self.query_one(PromptPane).set_adapters(options)

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
        if self.current or self.eval_token:
            self.notify("Finish or cancel the current run before loading another model.", severity="warning")
        elif event.value.strip():
            self.load_model(event.value.strip())

    def _error(self, message: str) -> None:
        self.results.set_status(message, error=True)
        self.notify(message, severity="error", timeout=8)

    def _single_prompt(self) -> tuple[str, PromptVersion, Prompt]:
        """The prompt on screen, its variables filled from the eval dataset's first row."""
        pane = self.query_one(PromptPane)
        version = pane.version()
        template, system = Template(version.template), Template(version.system)
        values: dict[str, str] = {}
        if template.variables or system.variables:
            request = self.evals.form()
            items = load_dataset(request.dataset, expected=request.expected,
                                 mapping=request.mapping).split(request.split)
            if not items:
                raise TunelabError(f"dataset {request.dataset} has no rows to fill the template from")
            values = items[0].vars
            template.check(values, source=items[0].where)
            system.check(values, source=items[0].where)
        return pane.prompt_name, version, Prompt(template.render(values), system.render(values), version.mode)

    def _not_mounted_yet(self, action: Callable[[], None]) -> bool:
        """The Eval tab mounts just after the first frame; a key pressed before that acts right after."""
        if self.query("#eval-split"):  # the pane and its form fields
            return False
        self.call_after_refresh(action)
        return True

    def action_run(self) -> None:
        if self._not_mounted_yet(self.action_run):
            return
        if self.current is not None:
            self.notify("Already generating; esc cancels.", severity="warning")
            return
        if not self.query_one(PromptPane).text.strip():
            self.notify("The prompt is empty.", severity="warning")
            return
        adapter = self.query_one(PromptPane).adapter
        try:
            name, version, prompt = self._single_prompt()
            path = str(resolve_adapter(self.root, adapter)) if adapter else None
            rid = self.client.generate(prompt.text, version.params, system=prompt.system, mode=prompt.mode,
                                       adapter=path)
        except TunelabError as exc:
            self._error(str(exc))
            return
        self.current = {"id": rid, "model": self.model, "prompt": prompt, "name": name, "version": version,
                        "adapter": adapter,
                        "streamed": [], "rendered_prompt": "", "started_at": time.monotonic()}
        self.query_one(TabbedContent).active = "tab-output"
        self.results.begin()
        if not self.model_ready:
            self.results.set_status(f"waiting for {self.model} to load…")

    def action_cancel(self) -> None:
        if self.current is not None:
            self.client.cancel(self.current["id"])
            self.results.set_status("cancelling…")
        elif self.eval_token is not None:
            self.eval_cancel.set()
            self.notify("Cancelling the eval…")

    @on(ModelEvent)
    def model_event(self, message: ModelEvent) -> None:
        event, kind = message.event, message.kind
        if kind == "ready":
            info = event["info"]
            self.model_ready = True
            self.linear_modules = info.get("linear_modules", [])
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
            if self._out_of_sight("tab-output"):
                self.notify(f"Run done: {result['completion_tokens']} tokens, {result['stop_reason']}.")
            self._finish_current(status="cancelled" if result["stop_reason"] == "cancelled" else "done",
                                 result=result)
        elif kind == "error":
            self.results.set_status(event["message"], error=True)
            self._finish_current(status="error", error=event["message"])

    def _model_failed(self, message: str) -> None:
        self.results.loading = False
        self.sub_title = "no model"
        self._error(message)

    def _finish_current(self, *, status: str, result: dict[str, Any] | None = None,
                        error: str | None = None) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        prompt, version = current["prompt"], current["version"]
        record = generation_record(model=current["model"], prompt=prompt.text, system=prompt.system,
                                   mode=prompt.mode, params=version.params, result=result, status=status,
                                   error=error, partial_output="".join(current["streamed"]),
                                   rendered_prompt=current["rendered_prompt"], adapter=current["adapter"])
        record.update(prompt_name=current["name"], prompt_version=version.id, template=version.template)
        self.save_run(record, current["name"], version)

    @work(thread=True, group="history", exclusive=False)
    def save_run(self, record: dict[str, Any], name: str, version: PromptVersion) -> None:
        try:
            self.prompts.save(name, version)
            self.history.add(record)
        except (OSError, TunelabError) as exc:
            self.call_from_thread(self.notify, f"history not saved: {exc}", severity="error")

    def action_eval(self) -> None:
        if self._not_mounted_yet(self.action_eval):
            return
        if self.eval_token is not None:
            self.notify("An eval is running; esc cancels it.", severity="warning")
            return
        pane = self.query_one(PromptPane)
        try:
            version = pane.version()
            request = self.evals.form()
        except TunelabError as exc:
            self._error(str(exc))
            return
        adapters = [None, pane.adapter] if pane.adapter else [None]  # with a LoRA chosen: the 2x2
        candidates = [Variant(name, v, self.model, a) for a in adapters
                      for name, v in (("no prompt", None), (pane.prompt_name, version))]
        shown = {c.label for c in self.evals.columns}
        variants = [v for v in candidates if v.label not in shown] or candidates[1:2]
        token = f"t{next(self.tokens)}"
        self.eval_token = token
        self.eval_cancel = threading.Event()
        self.evals.start_run(token, [v.label for v in variants])
        self.query_one(TabbedContent).active = "tab-eval"
        self.run_eval_in_thread(token, request, variants, pane.prompt_name, version)

    @work(thread=True, group="eval", exclusive=False)
    def run_eval_in_thread(self, token: str, request: EvalRequest, variants: list[Variant], name: str,
                           version: PromptVersion) -> None:
        try:
            self.prompts.save(name, version)
            summary = run_eval(self.root, request, variants, WorkerBackend(self.client, self.model),
                               on_row=lambda row: self.post_message(EvalRow(token, row)),
                               on_progress=lambda done, total: self.post_message(EvalProgress(token, done, total)),
                               cancel=self.eval_cancel)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        baseline = EvalRuns(self.root).baseline_for(summary["dataset"], summary["split"])
        self.post_message(EvalFinished(token, summary, baseline=baseline))

    @on(EvalRow)
    def eval_row(self, message: EvalRow) -> None:
        self.evals.add_row(message.token, message.row)

    @on(EvalProgress)
    def eval_progress(self, message: EvalProgress) -> None:
        self.evals.progress(message.done, message.total)

    @on(EvalFinished)
    def eval_finished(self, message: EvalFinished) -> None:
        self.eval_token = None
        if message.summary is None:
            self.evals.drop_run(message.token)
            self._error(message.error or "eval failed")
            return
        self.evals.finish_run(message.token, message.summary)
        self.evals.show_baseline(message.baseline)
        best = max(message.summary["variants"], key=lambda v: v["pass_rate"])
        if self._out_of_sight("tab-eval"):
            self.notify(f"Eval done: best {best['pass_rate']:.0%} ({best['label']})")

    @on(EvalPane.PinRequested)
    def pin_baseline(self, message: EvalPane.PinRequested) -> None:
        runs = EvalRuns(self.root)
        try:
            doc = runs.pin(message.run_id, message.variant)
            summary = runs.load(message.run_id)
        except TunelabError as exc:
            self._error(str(exc))
            return
        self.evals.show_baseline((summary, message.variant))
        self.notify(f"Baseline for {doc['key']}: {summary['variants'][message.variant]['label']}")

    def action_rendered(self) -> None:
        if self._not_mounted_yet(self.action_rendered):
            return
        try:
            _, _, prompt = self._single_prompt()
        except TunelabError as exc:
            self._error(str(exc))
            return
        self.client.render(prompt.to_dict(), lambda event: self.post_message(Rendered(event)))

    @on(Rendered)
    def show_rendered(self, message: Rendered) -> None:
        event = message.event
        if event["event"] == "rendered":
            self.push_screen(RenderedScreen(event["text"], event["tokens"]))
        else:
            self._error(event.get("message", "could not render the prompt"))

    def action_train(self) -> None:
        if self._not_mounted_yet(self.action_train):
            return
        try:
            request = self.evals.form()  # train on the dataset (and field mapping) the workbench uses
        except TunelabError as exc:
            self._error(str(exc))
            return
        dataset = request.dataset

        def start(settings: dict | None) -> None:
            if settings is None:
                return
            use_prompt = settings.pop("use_prompt")
            extra: dict[str, Any] = {"model": self.model, "dataset": dataset, "expected": request.expected,
                                     "mapping": request.mapping}
            try:
                if use_prompt:
                    version = self.query_one(PromptPane).version()
                    extra.update(template=version.template, system=version.system, mode=version.mode)
                run_id = self.query_one(TrainingPane).start(TrainConfig(**settings, **extra))
            except TunelabError as exc:
                self._error(str(exc))
                return
            self.notify(f"Training run {run_id[:10]} started; it keeps running if you quit.")

        self.push_screen(TrainForm(dataset, self.query_one(PromptPane).prompt_name, self.linear_modules), start)

    def action_history(self) -> None:
        self.push_screen(HistoryScreen(self.history, self.root), self.reopen)

    def reopen(self, record: dict[str, Any] | None) -> None:
        """Put a history record back in the editor (its prompt version for an eval; the run for training)."""
        if record is None:
            return
        pane = self.query_one(PromptPane)
        kind = record.get("kind", "generation")
        if kind == "train" and record.get("ref"):
            self.query_one(TrainingPane).select(str(record["ref"]))
            config = record.get("params") if isinstance(record.get("params"), dict) else {}
            if not config.get("template"):
                self.notify(f"Training run {str(record.get('ref'))[:10]} is shown in the Training pane.")
                return
            record = {**record, "template": config["template"], "prompt_name": None, "params": {}}
        if kind == "eval" and record.get("prompt_id"):
            try:
                _, version = self.prompts.get(record["prompt_id"])
            except TunelabError as exc:
                self._error(str(exc))
                return
            record = {**record, "template": version.template, "system": version.system, "mode": version.mode,
                      "params": version.params, "adapter": None}
        elif kind == "eval":
            self.notify("That eval ran the items without a prompt: nothing to open.", severity="warning")
            return
        pane.load_record(record)
        adapter = str(record.get("adapter") or "")
        if adapter and adapter not in pane.adapter_ids:
            self.notify(f"LoRA {adapter[:10]} is not a finished adapter here; running on the base model.",
                        severity="warning")
        model = str(record.get("model") or "").split(",")[0].strip()
        if kind != "eval" and model and model != self.model and self.current is None and self.eval_token is None:
            self.query_one("#model-input", Input).value = model
            self.load_model(model)
        self.query_one("#prompt-text").focus()
        self.notify("Re-opened in the editor: ctrl+r runs it.")

    def action_versions(self) -> None:
        self.push_screen(VersionsScreen(self.prompts, self.query_one(PromptPane).prompt_name))

    # -- palette, help, editor, clipboard, layout -------------------------------------------------
    @property
    def adapter_choices(self) -> list[str]:
        return self.query_one(PromptPane).adapter_ids

    def use_adapter(self, adapter: str | None) -> None:
        select = self.query_one("#adapter-select", Select)
        if adapter is None:
            select.clear()
        else:
            select.value = adapter
        self.notify(f"Next runs use {'LoRA ' + adapter[:10] if adapter else 'the base model'}.")

    def action_focus_model(self) -> None:
        self.query_one("#model-input", Input).focus()

    def action_stop_training(self) -> None:
        self.query_one(TrainingPane).action_stop()

    def action_export_history(self) -> None:
        if not isinstance(self.screen, HistoryScreen):
            self.action_history()
        self.call_after_refresh(lambda: isinstance(self.screen, HistoryScreen) and self.screen.action_export())

    def action_help(self) -> None:
        """Help for the focused pane: what it is for, and the keys that work there now."""
        node = self.focused
        owner = next((n for n in ([node, *node.ancestors_with_self] if node else []) if getattr(n, "HELP", None)),
                     self.screen)
        title = getattr(owner, "BORDER_TITLE", None) or type(owner).__name__.removesuffix("Screen")
        about = getattr(owner, "HELP", None) or self.HELP
        keys, seen = [], set()
        for key, active in self.active_bindings.items():
            binding = active.binding
            if not binding.description or (binding.id, binding.action) in seen:
                continue
            seen.add((binding.id, binding.action))
            keys.append((self.get_key_display(binding), binding.description, binding.id or ""))
        self.push_screen(HelpScreen(str(title), about, keys))

    def action_copy_output(self) -> None:
        text = self.results.output.text
        if not text:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(f"Copied the output ({len(text)} characters).")

    def action_zoom(self) -> None:
        """Maximize the pane that holds the focus; again to restore the layout."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        panes = (PromptPane, TrainingPane, TabbedContent)
        node = self.focused
        pane = next((n for n in (node.ancestors_with_self if node else []) if isinstance(n, panes)), None)
        if pane is not None:
            screen.maximized = pane

    def action_toggle_layout(self) -> None:
        """Side by side (wide terminals) or stacked (tall ones)."""
        self.query_one("#main").toggle_class("-stacked")

    def action_edit_prompt(self) -> None:
        """Open the prompt in $VISUAL/$EDITOR (no shell); any failure is one line, the text is kept."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.notify("Set $EDITOR (or $VISUAL) to edit the prompt in your editor.", severity="warning")
            return
        pane = self.query_one(PromptPane)
        fd, name = tempfile.mkstemp(prefix="tunelab-prompt-", suffix=".txt")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(pane.text)
            try:
                with self.suspend():
                    done = subprocess.run([*shlex.split(editor), str(path)], check=False)
            except SuspendNotSupported:
                self.notify("This terminal cannot hand over to an editor.", severity="warning")
                return
            except (OSError, ValueError) as exc:
                self.notify(f"cannot start editor '{editor}': {getattr(exc, 'strerror', None) or exc}",
                            severity="error")
                return
            if done.returncode != 0:
                self.notify(f"editor exited with {done.returncode}; the prompt is unchanged", severity="warning")
                return
            pane.text = path.read_text(encoding="utf-8", errors="replace").removesuffix("\n")
        finally:
            path.unlink(missing_ok=True)
        self.query_one("#prompt-text").focus()

    def on_unmount(self) -> None:
        if self.current is not None:  # quitting mid-stream: stop the work instead of waiting for it
            self.client.cancel(self.current["id"])
        self.eval_cancel.set()
        self.client.close()
