"""The tunelab app: prompt editor, training monitor and results (output and eval matrix) on one screen.

Every use case is a `core.workbench.Workbench` call, made in a thread worker when it reads disk, takes
a lock or starts a process; model work happens in the model worker child (`core.engine.client`), whose
typed events reach the app as one message class each. The handlers here own all state. Nothing here
imports torch.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.lazy import Lazy
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Select, TabbedContent, TabPane, TextArea

from core import __version__
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.storage.config import config_path, load_config, save_setting, themes_dir
from core.storage.paths import data_dir, logs_dir
from tui.cli.guard import error_line
from tui.keymap import bad_keys, binding_ids, binding_owners, with_keys
from tui.messages import (
    AdaptersFound,
    CompareStage,
    EditorRestored,
    EvalFinished,
    EvalProgress,
    EvalRow,
    EvalStarted,
    FirstStart,
    GenerationChunk,
    GenerationDone,
    GenerationStarted,
    ItemInput,
    ModelReady,
    PromptRendered,
    RunStarted,
    VerdictReady,
    WorkbenchFailed,
    WorkerCrashed,
    WorkerError,
    worker_message,
)
from tui.themes import DEFAULT_THEME, folder_stamp, shipped_themes, user_themes
from tui.widgets.deferred import Deferred
from tui.widgets.prompt_pane import PromptPane
from tui.widgets.results_pane import ResultsPane

if TYPE_CHECKING:  # imported after the first frame (`_after_first_frame`), where they are used
    from core.data.prompts import PromptStore, PromptVersion
    from core.engine import protocol as wire
    from core.engine.client import ModelWorkerClient
    from core.engine.prompt import Prompt
    from core.evals.runner import EvalRequest
    from core.history.store import History
    from core.training.config import TrainConfig
    from core.workbench.service import Adapter, Comparison, PromptRef, Workbench
    from tui.screens.cell_items import CellItemsScreen
    from tui.screens.verdict import VerdictScreen
    from tui.widgets.eval_pane import EvalPane
    from tui.widgets.training_pane import TrainingPane

LATER = (  # what the first frame does not need, imported by a thread worker right after it
    "core.engine.client",
    "core.workbench.service",
    "core.workbench.compare",
    "tui.palette",
    "tui.compare_progress",
    "tui.screens.ask",
    "tui.screens.cell_items",
    "tui.screens.help",
    "tui.screens.history",
    "tui.screens.item_outputs",
    "tui.screens.rendered",
    "tui.screens.train_form",
    "tui.screens.verdict",
    "tui.screens.versions",
    "tui.widgets.eval_pane",
    "tui.widgets.training_pane",
)


def _only(adapters: object) -> str | None:
    """The one adapter of an eval's history record ("a, b" when it compared several: then none)."""
    names = [a.strip() for a in str(adapters or "").split(",") if a.strip()]
    return names[0] if len(names) == 1 else None


RENDER = "render"  # the token of ctrl+t's requests (generations are g1, g2, ...)


def default_client(on_event: Callable[[wire.Event], None]) -> ModelWorkerClient:
    from core.engine.client import ModelWorkerClient

    return ModelWorkerClient(on_event, logs_dir() / "model-worker.log")


def commands_provider():
    """The palette's commands, imported when the palette first opens (textual.command costs ~20 ms)."""
    from tui.palette import TunelabCommands

    return TunelabCommands


class TunelabApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere (tests)
    TITLE = "tunelab"
    COMMANDS = App.COMMANDS | {commands_provider}
    HELP = (
        "tunelab: the prompt on the left (<run> runs, <eval> evaluates), training below it (<train>), "
        "results and the eval matrix on the right, history on <history>, every action in the palette "
        "(ctrl+p). <zoom> zooms the focused pane, <toggle-layout> stacks the panes, <edit-prompt> edits the "
        "prompt in $EDITOR."
    )
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run", priority=True),
        Binding("ctrl+g", "eval", "Eval", id="eval", priority=True),
        Binding("ctrl+t", "rendered", "Rendered", id="rendered", priority=True, show=False),
        Binding("ctrl+o", "versions", "Versions", id="versions", priority=True, show=False),
        Binding("ctrl+n", "train", "Train", id="train", priority=True),
        Binding("f8", "history", "History", id="history", priority=True),
        Binding("f9", "verdict", "Verdict", id="verdict", priority=True),
        Binding("f1", "help", "Help", id="help", priority=True),  # priority: text areas bind f6/f7 themselves
        Binding("f4", "edit_prompt", "Editor", id="edit-prompt", show=False, priority=True),
        Binding("f6", "zoom", "Zoom", id="zoom", show=False, priority=True),
        Binding("f7", "toggle_layout", "Layout", id="toggle-layout", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(
        self,
        options: ModelOptions | str = ModelOptions(),
        *,
        client_factory: Callable[[Callable[[wire.Event], None]], ModelWorkerClient] = default_client,
        home: Path | None = None,
    ) -> None:
        super().__init__()
        self.options = ModelOptions(options) if isinstance(options, str) else options
        self.model = self.options.model
        self.client_factory = client_factory
        self.root = home or data_dir()
        self._client: ModelWorkerClient | None = None
        self._bench: Workbench | None = None
        self._made = threading.Lock()  # the client and the workbench are made once, by whichever thread is first
        self.model_ready = False
        self.started = False  # every part of the screen mounted and the start-up work begun (tests wait on it)
        self.linear_modules: list[str] = []  # offered as LoRA targets in the new-run form
        self.current: dict[str, Any] | None = None  # the single run being generated and what it streamed
        self.eval_token: str | None = None  # the eval run in progress
        self.eval_cancel = threading.Event()
        self.editor_state: dict[str, Any] | None = None  # the prompt on screen, changed and not yet kept
        self.editor_timer: Timer | None = None
        self.busy_since_start = False  # a run, eval or training started: no first-start offer any more
        self.editor_ready = False  # the kept prompt has been read (changes before that are the start's own)
        self.last_eval: dict[str, Any] | None = None  # this session's newest complete eval: the verdict's
        self.tokens = itertools.count(1)
        self.adapters: list[Adapter] = []
        self.problems: list[str] = []  # config and theme problems, shown once the screen is up
        self.stop_watching = threading.Event()  # ends the theme watcher at exit
        self._apply_config()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PromptPane(self.model, id="prompt-pane")
                yield Deferred(self._training_pane)
            with Lazy(TabbedContent(id="right")):  # results and eval matrix: empty at start, so just after it
                with TabPane("Output", id="tab-output"):
                    yield ResultsPane(id="results-pane")
                with TabPane("Eval", id="tab-eval"):
                    yield Deferred(self._eval_pane)
        yield Footer()

    @property
    def client(self) -> ModelWorkerClient:
        """The model worker's client, made on first use (by the model load, right after the first frame)."""
        with self._made:
            if self._client is None:
                self._client = self.client_factory(self._post_worker_event)
            return self._client

    @property
    def workbench(self) -> Workbench:
        """The workbench, made on first use (by the thread worker that runs after the first frame)."""
        with self._made:
            if self._bench is None:
                from core.workbench.service import Workbench

                self._bench = Workbench(self.root)
            return self._bench

    @property
    def history(self) -> History:
        return self.workbench.history

    @property
    def prompts(self) -> PromptStore:
        return self.workbench.prompts

    @property
    def results(self) -> ResultsPane:
        return self.query_one(ResultsPane)

    def _training_pane(self) -> TrainingPane:
        from tui.widgets.training_pane import TrainingPane

        return TrainingPane(lambda: self.workbench, id="training-pane")

    def _eval_pane(self) -> EvalPane:
        from tui.widgets.eval_pane import EvalPane

        return EvalPane(id="eval-pane")

    @property
    def evals(self) -> EvalPane:
        return cast("EvalPane", self.query_one("#eval-pane"))

    @property
    def training(self) -> TrainingPane:
        return cast("TrainingPane", self.query_one("#training-pane"))

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
        # Set as App.__init__ sets the default one, not through the watcher: that would re-parse the whole
        # stylesheet at start (~8 ms of the first frame); nothing is parsed yet, so the variables suffice.
        self.set_reactive(App.theme, wanted)
        self.set_class(self.current_theme.dark, "-dark-mode", update=False)
        self.set_class(not self.current_theme.dark, "-light-mode", update=False)
        self.stylesheet.set_variables(self.get_css_variables())
        keymap = {}
        for binding_id, value in sorted(config.keys.items()):  # an unknown id is named by `_check_keymap`
            if bad := bad_keys(value):
                self.problems.append(
                    f"{config_path()}: keys.{binding_id}: '{bad[0]}' is not a key name (like ctrl+r, f5, escape); "
                    "kept the default"
                )
            else:
                keymap[binding_id] = value
        self.set_keymap(keymap)

    def _check_keymap(self) -> None:
        """Names each [keys] id that no binding has (every screen's bindings: known once they are imported)."""
        known = binding_ids()
        for binding_id in sorted(set(self._keymap) - known):
            problem = f"{config_path()}: keys.{binding_id} is not a binding id (see F1 for the ids); ignored"
            self.problems.append(problem)
            self.notify(problem, severity="warning", timeout=10)

    def _theme_chosen(self, theme) -> None:
        """The palette's theme switcher (or any change) persists the choice in config.toml."""
        try:
            save_setting("theme", theme.name)
        except TunelabError as exc:
            self.notify(str(exc), severity="warning")

    @work(thread=True, group="themes-watch")
    def _watch_user_themes(self) -> None:
        """Hot reload: a theme file added or edited in the user themes dir applies without a restart."""

        def reload() -> None:
            stamp = folder_stamp(themes_dir())
            if stamp != self._themes_stamp:
                self._themes_stamp = stamp
                self.call_from_thread(self._apply_user_themes, *user_themes(themes_dir()))

        from core.storage.watch import watch_folder

        watch_folder(themes_dir(), self.stop_watching, reload, heartbeat_s=5.0)

    def _apply_user_themes(self, themes: list, problems: list[str]) -> None:
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
        self.sub_title = f"v{__version__}"
        self.query_one("#prompt-text").focus()
        self.call_after_refresh(self._after_first_frame)  # its imports would hold the GIL mid-frame

    @work(thread=True, group="start", exclusive=True)
    def _after_first_frame(self) -> None:
        """What the first frame does not need, off the UI loop: the modules of every screen and use case,
        the model load, the adapters, the kept prompt, the keymap check, the themes watcher."""
        for module in LATER:
            importlib.import_module(module)
        binding_owners()  # lists the screen and widget packages (disk): cached here, never on the loop
        try:
            self.workbench  # noqa: B018 -- made here, not by the first handler that needs it on the loop
        except (OSError, TunelabError) as exc:  # a data dir that cannot be used: one line, as the CLI says it
            self.call_from_thread(self.exit, None, 2, error_line(exc))
            return
        gc.freeze()  # the startup heap is never scanned again: a full collection of it stalls the loop ~50 ms
        self.call_from_thread(self._started)

    def _started(self) -> None:
        for slot in self.screen_stack[0].query(Deferred):
            slot.fill()
        if self._not_mounted_yet(self._started):
            return
        self.load_model(self.model)
        self.refresh_adapters(select=self.options.adapter)
        self._check_first_start()
        self._check_keymap()
        self._watch_user_themes()
        self.started = True

    @work(thread=True, group="first-start", exclusive=True)
    def _check_first_start(self) -> None:
        """The prompt kept from the last session comes back; with no eval yet, the demo comparison is offered."""
        try:
            state = self.workbench.remembered_editor()
            first = self.workbench.first_start()
            recovered = self.workbench.recover_evals()
        except (OSError, TunelabError):
            state, first, recovered = None, False, []
        if recovered:  # notify is thread-safe
            self.notify(f"Recovered {len(recovered)} eval(s) cut short last time: partial, resumable.")
        self.post_message(EditorRestored(state or {}))
        if first:
            self.post_message(FirstStart())

    @on(TextArea.Changed, "#prompt-text")
    @on(Input.Changed, "#prompt-name, #system-input, .param-input")
    @on(Select.Changed, "#mode-select, #adapter-select")
    def editor_changed(self) -> None:
        """The prompt on screen is kept for the next start: captured now, written a second after the last
        change (off the loop), and at exit if that second has not passed."""
        if not self.editor_ready:  # the fields filling at start, before the kept prompt is back
            return
        self.editor_state = self.query_one(PromptPane).state()
        if self.editor_timer is not None:
            self.editor_timer.stop()
        self.editor_timer = self.set_timer(1.0, self._remember_editor_later)

    def _remember_editor_later(self) -> None:
        self.run_worker(self._remember_editor, thread=True, group="editor", exclusive=True)

    def _remember_editor(self) -> None:
        state, self.editor_state = self.editor_state, None
        if state is not None:
            try:
                self.workbench.remember_editor(state)
            except (OSError, TunelabError):
                pass  # a prompt not kept for the next start is no reason to interrupt anything

    @on(EditorRestored)
    def editor_restored(self, message: EditorRestored) -> None:
        self.editor_ready = True
        pane = self.query_one(PromptPane)
        if not message.state or pane.text or self.current is not None:  # typed into already: the new text wins
            return
        pane.load_record({**message.state, "adapter": None})
        adapter = message.state.get("adapter")
        if isinstance(adapter, str) and adapter and not self.options.adapter:
            self.refresh_adapters(select=adapter)

    @on(FirstStart)
    def first_start(self) -> None:
        if not self.busy_since_start:  # the user got going before this check came back: offer nothing
            self.results.offer_demo(True)

    def _got_going(self) -> None:
        self.busy_since_start = True
        self.results.offer_demo(False)

    MAIN_ONLY = {
        "run",
        "eval",
        "rendered",
        "versions",
        "train",
        "history",
        "verdict",
        "edit_prompt",
        "zoom",
        "toggle_layout",
    }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Workbench keys act on the main screen only; over a dialog or the history they pass through."""
        if action in self.MAIN_ONLY and len(self.screen_stack) > 1:
            return False
        if action == "help" and type(self.screen).__name__ == "HelpScreen":  # by name: it loads after the first frame
            return False
        return True

    def on_training_pane_run_ended(self, message: TrainingPane.RunEnded) -> None:
        """One notice per ended run (with its error, if any); adapters may have changed."""
        severity: Literal["error", "information"] = "error" if message.state == "failed" else "information"
        self.notify(
            f"Training run {message.run_id[:10]} {message.state}" + (f": {message.error}" if message.error else "."),
            severity=severity,
        )
        self.refresh_adapters()

    def on_training_pane_adapters_changed(self) -> None:
        self.refresh_adapters()

    def _out_of_sight(self, pane_id: str) -> bool:
        """True when `pane_id`'s tab is not shown: another tab, a dialog or history on top, another pane zoomed."""
        maximized = self.screen_stack[0].maximized
        return (
            len(self.screen_stack) > 1
            or self.query_one(TabbedContent).active != pane_id
            or (maximized is not None and maximized is not self.query_one(TabbedContent))
        )

    @work(thread=True, group="adapters", exclusive=True)
    def refresh_adapters(self, select: str | None = None) -> None:
        """Finished runs' adapters, newest first (read off the UI loop), offered in the prompt pane."""
        try:
            found = self.workbench.adapters()
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(f"cannot list adapters: {exc}"))
            return
        self.post_message(AdaptersFound(found, select))

    @on(AdaptersFound)
    def adapters_found(self, message: AdaptersFound) -> None:
        self.adapters = message.adapters
        pane = self.query_one(PromptPane)
        pane.set_adapters([(a.label, a.run_id) for a in message.adapters])
        if message.select:
            if message.select in pane.adapter_ids:
                self.use_adapter(message.select)
            else:
                self.notify(f"LoRA {message.select} is not a finished training run here.", severity="warning")

    @on(WorkbenchFailed)
    def workbench_failed(self, message: WorkbenchFailed) -> None:
        self._error(message.error)

    def load_model(self, model: str) -> None:
        self.model, self.model_ready = model, False
        self.results.set_status(f"loading {model}…")
        self.results.loading = True
        self._send_load(replace(self.options, model=model))

    @work(thread=True, group="model-load", exclusive=True)
    def _send_load(self, options: ModelOptions) -> None:
        """Starting the worker process happens off the UI loop."""
        from core.engine import protocol as wire

        try:
            self.client.load(options)
        except TunelabError as exc:
            self.post_message(WorkerError(wire.Error(str(exc), None, "load")))

    def _post_worker_event(self, event: wire.Event, token: str | None = None) -> None:
        """From the client's reader thread: one typed message per event, tagged with the request's token."""
        self.post_message(worker_message(event, token))

    @on(Input.Submitted, "#model-input")
    def model_submitted(self, event: Input.Submitted) -> None:
        if self.current or self.eval_token:
            self.notify("Finish or cancel the current run before loading another model.", severity="warning")
        elif event.value.strip():
            self.load_model(event.value.strip())

    def _error(self, message: str) -> None:
        self.results.set_status(message, error=True)
        self.notify(message, severity="error", timeout=8)

    def _not_mounted_yet(self, action: Callable[[], None]) -> bool:
        """Parts of the main screen mount just after the first frame (`Lazy`): the Eval tab, the training
        pane, most prompt fields. A key pressed before that acts right after."""
        if self.started or not self.screen_stack[0].query("Lazy, Deferred"):  # no DOM walk once started
            return False
        self.call_after_refresh(action)
        return True

    def action_run(self) -> None:
        if self._not_mounted_yet(self.action_run):
            return
        self._got_going()
        if self.current is not None:
            self.notify("Already generating; esc cancels.", severity="warning")
            return
        pane = self.query_one(PromptPane)
        if not pane.text.strip():
            self.notify("The prompt is empty.", severity="warning")
            return
        try:
            version = pane.version()
            request = self.evals.form()
        except TunelabError as exc:
            self._error(str(exc))
            return
        from core.workbench.service import PromptRef

        token = f"g{next(self.tokens)}"
        self.current = {
            "token": token,
            "rid": None,
            "cancel": False,
            "model": self.model,
            "prompt": None,
            "ref": PromptRef(pane.prompt_name, version),
            "adapter": pane.adapter,
            "streamed": [],
            "rendered_prompt": "",
            "started_at": time.monotonic(),
        }
        self.query_one(TabbedContent).active = "tab-output"
        self.results.begin()
        if not self.model_ready:
            self.results.set_status(f"waiting for {self.model} to load…")
        threading.Thread(  # not a Textual worker: one starts on the loop's next pass, after a repaint (~6 ms)
            target=self._send_generation, args=(token, version, request, pane.adapter), daemon=True, name="send"
        ).start()

    def _send_generation(self, token: str, version: PromptVersion, request: EvalRequest, adapter: str | None) -> None:
        """Fill the template (reads the dataset), find the adapter and send the request, off the UI loop."""
        try:
            self._send_now(token, version, request, adapter)
        except Exception as exc:  # a bug: handled as a Textual worker's would be (the app shows it and exits)
            self.call_from_thread(self._handle_exception, exc)

    def _send_now(self, token: str, version: PromptVersion, request: EvalRequest, adapter: str | None) -> None:
        from core.engine import protocol as wire

        try:
            prompt = self.workbench.fill_prompt(version, request)
            path = str(self.workbench.adapter_path(adapter)) if adapter else None
            rid = self.client.generate(
                prompt.to_dict(), version.params, lambda event: self._post_worker_event(event, token), adapter=path
            )  # sent at once: a round trip through the UI loop first would delay every run by a frame
        except (OSError, TunelabError) as exc:
            self.post_message(WorkerError(wire.Error(str(exc), None, "generate"), token))
            return
        self.call_from_thread(self._generation_sent, token, rid, prompt)

    def _generation_sent(self, token: str, rid: str, prompt: Prompt) -> None:
        if self.current is not None and self.current["token"] == token:
            self.current.update(rid=rid, prompt=prompt)
            if self.current["cancel"]:
                self.client.cancel(rid)

    def action_cancel(self) -> None:
        if self.current is not None:
            self.current["cancel"] = True
            if self.current["rid"]:
                self.client.cancel(self.current["rid"])
            self.results.set_status("cancelling…")
        elif self.eval_token is not None:
            self.eval_cancel.set()
            self.notify("Cancelling the eval…")

    def _is_current(self, token: str | None) -> dict[str, Any] | None:
        return self.current if self.current is not None and self.current["token"] == token else None

    @on(ModelReady)
    def model_ready_event(self, message: ModelReady) -> None:
        info = message.event.info
        self.model_ready = True
        self.linear_modules = info.get("linear_modules", [])
        self.results.loading = False
        self.sub_title = f"{info['model']} · {info['device']} · {info['dtype']} · {info['params_m']}M"
        if self.current is None:
            self.results.set_status(f"ready: {info['model']} loaded in {info['load_s']:.1f}s")

    @on(WorkerCrashed)
    def worker_crashed(self, message: WorkerCrashed) -> None:
        if message.token is not None:  # the open request's copy; the client's own copy follows
            return
        self.model_ready = False
        self._finish_current(status="error", error=message.event.message)
        self._model_failed(f"{message.event.message} (restarts on the next run)")

    @on(WorkerError)
    def worker_error(self, message: WorkerError) -> None:
        event = message.event
        if event.op == "load":
            self._model_failed(event.message)
            if self.current is not None:
                self._finish_current(status="error", error=event.message)
            return
        if self._is_current(message.token) is not None:
            self.results.set_status(event.message, error=True)
            self._finish_current(status="error", error=event.message)
        elif message.token in (None, RENDER):  # a stale generation's error is dropped with it
            self._error(event.message)

    @on(GenerationStarted)
    def generation_started(self, message: GenerationStarted) -> None:
        if (current := self._is_current(message.token)) is not None:
            current["rendered_prompt"] = message.event.rendered_prompt
            current["started_at"] = time.monotonic()
            self.results.set_status("generating… (esc cancels)")

    @on(GenerationChunk)
    def generation_chunk(self, message: GenerationChunk) -> None:
        if (current := self._is_current(message.token)) is not None:
            current["streamed"].append(message.event.text)
            self.results.append(message.event.text)
            self.results.progress(message.event.tokens, time.monotonic() - current["started_at"])

    @on(GenerationDone)
    def generation_done(self, message: GenerationDone) -> None:
        if self._is_current(message.token) is None:
            return
        result = message.event.result
        self.results.finish(result)
        if self._out_of_sight("tab-output"):
            self.notify(f"Run done: {result['completion_tokens']} tokens, {result['stop_reason']}.")
        self._finish_current(status="cancelled" if result["stop_reason"] == "cancelled" else "done", result=result)

    def _model_failed(self, message: str) -> None:
        self.results.loading = False
        self.sub_title = "no model"
        self._error(message)

    def _finish_current(self, *, status: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        from core.engine.prompt import Prompt

        ref: PromptRef = current["ref"]
        prompt = current["prompt"] or Prompt(ref.version.template, ref.version.system, ref.version.mode)
        self.save_run(
            dict(
                model=current["model"],
                prompt=prompt,
                params=ref.version.params,
                status=status,
                result=result,
                error=error,
                streamed="".join(current["streamed"]),
                rendered_prompt=current["rendered_prompt"],
                adapter=current["adapter"],
                named=ref,
            )
        )

    @work(thread=True, group="history", exclusive=False)
    def save_run(self, fields: dict[str, Any]) -> None:
        try:
            self.workbench.save_generation(**fields)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(f"history not saved: {exc}"))

    def action_eval(self) -> None:
        if self._not_mounted_yet(self.action_eval):
            return
        self._got_going()
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
        from core.workbench.service import PromptRef

        ref = PromptRef(pane.prompt_name, version)
        adapters: list[str | None] = [None, pane.adapter] if pane.adapter else [None]  # with a LoRA: the 2x2
        candidates = self.workbench.variants([None, ref], adapters, [self.model])
        shown = {c.label for c in self.evals.columns}
        variants = [v for v in candidates if v.label not in shown] or candidates[1:2]
        token = f"t{next(self.tokens)}"
        self.eval_token = token
        self.eval_cancel = threading.Event()
        self.evals.start_run(token, [v.label for v in variants])
        self.query_one(TabbedContent).active = "tab-eval"
        self.run_eval_in_thread(token, request, variants, ref)

    @work(thread=True, group="eval", exclusive=False)
    def run_eval_in_thread(self, token: str, request: EvalRequest, variants: list, ref: PromptRef) -> None:
        from core.evals.backends import WorkerBackend

        try:
            self.prompts.save(ref.name, ref.version)
            summary = self.workbench.run_eval(
                request,
                variants,
                WorkerBackend(self.client, self.model, self.options.numerics()),
                on_row=lambda row: self.post_message(EvalRow(token, row)),
                on_progress=lambda done, total: self.post_message(EvalProgress(token, done, total)),
                cancel=self.eval_cancel,
            )
            baseline = self.workbench.baseline(summary)
            verdict = self._verdict_text(summary)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        self.post_message(EvalFinished(token, summary, baseline=baseline, verdict=verdict))

    def _verdict_text(self, summary: dict[str, Any], judged: Comparison | None = None) -> str | None:
        """The verdict sentence and its notes for an eval of two cells or more (reads run configs: off the loop)."""
        if summary["status"] != "done":
            return f"Eval {summary['status']}: a partial eval gives no verdict and cannot be a baseline."
        if len(summary["variants"]) < 2:
            return None
        judged = judged or self.workbench.comparison(summary)
        return "\n".join([judged.verdict.sentence if judged.verdict else judged.why_none, *judged.warnings])

    # -- the demo comparison ----------------------------------------------------------------------
    def action_compare_demo(self) -> None:
        """The first five minutes: the demo prompt (raw) in the editor, a LoRA trained as is and one with the
        prompt, every cell graded in the Eval matrix, then the verdict screen."""
        if self._not_mounted_yet(self.action_compare_demo):
            return
        if self.eval_token is not None or self.current is not None:
            self.notify("A run or eval is in progress; esc cancels it.", severity="warning")
            return
        from core import demo
        from core.workbench.compare import DEMO_PROMPT, DEMO_PROMPT_NAME

        if self.model != demo.MODEL_ALIAS:
            self._error("The demo comparison runs on the demo model: type demo in the model field.")
            return
        record = {
            "template": DEMO_PROMPT.template,
            "mode": DEMO_PROMPT.mode,
            "params": DEMO_PROMPT.gen_params.to_dict(),
            "prompt_name": DEMO_PROMPT_NAME,
            "adapter": None,
        }
        self.query_one(PromptPane).load_record(record)
        token = f"t{next(self.tokens)}"
        self.eval_token = token
        self.eval_cancel = threading.Event()
        self._got_going()
        self.results.set_status("Compare on the demo task: starting… (esc cancels)")
        self._compare_in_thread(token, replace(self.options, model=self.model, adapter=None))

    @work(thread=True, group="eval", exclusive=False)
    def _compare_in_thread(self, token: str, options: ModelOptions) -> None:
        from core.evals.backends import WorkerBackend
        from tui.compare_progress import PostingWatcher

        try:
            plan = self.workbench.demo_plan(options)
            watcher = PostingWatcher(self, token, plan.seeds)
            judged = self.workbench.compare(
                plan, WorkerBackend(self.client, self.model, self.options.numerics()), watcher, self.eval_cancel
            )
            baseline = self.workbench.baseline(judged.summary)
        except (OSError, TunelabError) as exc:
            self.post_message(EvalFinished(token, None, error=str(exc)))
            return
        verdict = self._verdict_text(judged.summary, judged)
        self.post_message(EvalFinished(token, judged.summary, baseline=baseline, verdict=verdict))
        if judged.summary["status"] == "done":
            self.post_message(VerdictReady(judged))

    @on(CompareStage)
    def compare_stage(self, message: CompareStage) -> None:
        if message.token == self.eval_token:
            self.results.set_status(f"Compare on the demo task · {message.text}")

    @on(EvalStarted)
    def eval_started(self, message: EvalStarted) -> None:
        if message.token == self.eval_token:
            self.evals.start_run(message.token, message.labels, clean=message.clean)
            self.query_one(TabbedContent).active = "tab-eval"

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
        if message.summary["status"] == "done":
            self.evals.finish_run(message.token, message.summary)
            self.last_eval = message.summary
        else:  # a partial column never stays to be compared, pinned or taken as done by the next ctrl+g
            self.evals.drop_run(message.token)
        self.evals.show_baseline(message.baseline)
        self.evals.show_verdict(message.verdict)
        best = max(message.summary["variants"], key=lambda v: v["pass_rate"])
        if self._out_of_sight("tab-eval"):
            self.notify(f"Eval done: best {best['pass_rate']:.0%} ({best['label']})")

    # -- the verdict -----------------------------------------------------------------------------
    def action_verdict(self) -> None:
        self._open_verdict(self.last_eval)

    @work(thread=True, group="verdict", exclusive=True)
    def _open_verdict(self, summary: dict[str, Any] | None) -> None:
        """This session's newest complete eval, else the newest stored one with two cells (off the UI loop)."""
        try:
            if summary is None:
                newest = next(
                    (r for r in self.workbench.evals.list() if r["status"] == "done" and len(r["variants"]) > 1), None
                )
                summary = self.workbench.evals.load(newest["id"]) if newest else None
            if summary is None:
                self.post_message(
                    WorkbenchFailed("No complete eval yet: ctrl+g runs one (or 'Compare on the demo task' in ctrl+p).")
                )
                return
            self.post_message(VerdictReady(self.workbench.comparison(summary)))
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))

    @on(VerdictReady)
    def verdict_ready(self, message: VerdictReady) -> None:
        from tui.screens.verdict import VerdictScreen

        if isinstance(self.screen, VerdictScreen):
            self.pop_screen()
        self.push_screen(VerdictScreen(message.comparison))

    def on_verdict_screen_open_cell(self, message: VerdictScreen.OpenCell) -> None:
        from tui.screens.cell_items import CellItemsScreen

        self.push_screen(CellItemsScreen(message.comparison, message.cell))

    def on_cell_items_screen_open_item(self, message: CellItemsScreen.OpenItem) -> None:
        from tui.screens.item_outputs import ItemOutputsScreen

        self.push_screen(ItemOutputsScreen(message.comparison, message.item_id))
        self._read_item(message.comparison.summary, message.item_id)

    @work(thread=True, group="item-input", exclusive=True)
    def _read_item(self, summary: dict[str, Any], item_id: str) -> None:
        self.post_message(ItemInput(item_id, self.workbench.item_input(summary, item_id)))

    @on(ItemInput)
    def item_input(self, message: ItemInput) -> None:
        from tui.screens.item_outputs import ItemOutputsScreen

        screen = self.screen
        if isinstance(screen, ItemOutputsScreen) and screen.item_id == message.item_id:
            screen.show_input(message.text)

    def on_verdict_screen_train_on_prompt(self, message: VerdictScreen.TrainOnPrompt) -> None:
        self._train_on_prompt(message.foreign.adapter, str(message.foreign.prompt_id))

    @work(thread=True, group="train-start", exclusive=True)
    def _train_on_prompt(self, adapter: str, prompt_id: str) -> None:
        try:
            run_id = self.workbench.train_on_prompt(adapter, prompt_id)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.post_message(RunStarted(run_id))

    def on_verdict_screen_write_report(self, message: VerdictScreen.WriteReport) -> None:
        from tui.screens.ask import AskScreen
        from tui.screens.verdict import VerdictScreen

        default = str(VerdictScreen.report_path(self.root, message.comparison))

        def write(path: str | None) -> None:
            if path and path.strip():
                self._write_report(message.comparison, Path(path.strip()).expanduser())

        self.push_screen(AskScreen("Write the report (.html or .md) to", default), write)

    @work(thread=True, group="report", exclusive=True)
    def _write_report(self, comparison: Any, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = self.workbench.write_report(comparison, path)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.notify(f"Report written: {written}")

    def on_eval_pane_pin_requested(self, message: EvalPane.PinRequested) -> None:
        self._pin(message.run_id, message.variant)

    @work(thread=True, group="pin", exclusive=True)
    def _pin(self, run_id: str, variant: int) -> None:
        """Pinning takes the metadata lock: off the UI loop."""
        try:
            doc = self.workbench.evals.pin(run_id, variant)
            summary = self.workbench.evals.load(run_id)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.call_from_thread(self._pinned, doc, summary, variant)

    def _pinned(self, doc: dict[str, Any], summary: dict[str, Any], variant: int) -> None:
        self.evals.show_baseline((summary, variant))
        self.notify(f"Baseline for {doc['key']}: {summary['variants'][variant]['label']}")

    def action_rendered(self) -> None:
        if self._not_mounted_yet(self.action_rendered):
            return
        pane = self.query_one(PromptPane)
        try:
            version = pane.version()
            request = self.evals.form()
        except TunelabError as exc:
            self._error(str(exc))
            return
        self._send_render(version, request)

    @work(thread=True, group="render", exclusive=True)
    def _send_render(self, version: PromptVersion, request: EvalRequest) -> None:
        try:
            prompt = self.workbench.fill_prompt(version, request)
            self.client.render(prompt.to_dict(), lambda event: self._post_worker_event(event, RENDER))
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))

    @on(PromptRendered)
    def show_rendered(self, message: PromptRendered) -> None:
        from tui.screens.rendered import RenderedScreen

        self.push_screen(RenderedScreen(message.event.text, message.event.tokens, message.event.note))

    def action_train(self) -> None:
        if self._not_mounted_yet(self.action_train):
            return
        self._got_going()
        try:
            request = self.evals.form()  # train on the dataset (and field mapping) the workbench uses
        except TunelabError as exc:
            self._error(str(exc))
            return

        def start(settings: dict | None) -> None:
            if settings is None:
                return
            use_prompt = settings.pop("use_prompt")
            try:
                version = self.query_one(PromptPane).version() if use_prompt else None
                config = self.workbench.train_config(
                    settings,
                    options=replace(self.options, model=self.model, adapter=None),
                    dataset=request.dataset,
                    expected=request.expected,
                    mapping=request.mapping,
                    prompt=version,
                )
            except TunelabError as exc:
                self._error(str(exc))
                return
            self._start_run(config)

        from tui.screens.train_form import TrainForm

        self.push_screen(TrainForm(request.dataset, self.query_one(PromptPane).prompt_name, self.linear_modules), start)

    @work(thread=True, group="train-start", exclusive=True)
    def _start_run(self, config: TrainConfig) -> None:
        """Checking the data and starting the run's process happen off the UI loop."""
        try:
            run_id = self.workbench.start_run(config)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.post_message(RunStarted(run_id))

    @on(RunStarted)
    def run_started(self, message: RunStarted) -> None:
        self.training.select(message.run_id)
        self.notify(f"Training run {message.run_id[:10]} started; it keeps running if you quit.")

    def action_history(self) -> None:
        from tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen(self.history, self.root), self.reopen)

    def reopen(self, record: dict[str, Any] | None) -> None:
        """Put a history record back in the editor (its prompt version for an eval; the run for training)."""
        if record is None:
            return
        pane = self.query_one(PromptPane)
        kind = record.get("kind", "generation")
        if kind == "train" and record.get("ref"):
            self.training.select(str(record["ref"]))
            params = record.get("params")
            config: dict[str, Any] = params if isinstance(params, dict) else {}
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
            record = {
                **record,
                "template": version.template,
                "system": version.system,
                "mode": version.mode,
                "params": version.params,
                "adapter": _only(record.get("adapter")),  # the eval's LoRA when it had one (the 2x2)
            }
        elif kind == "eval":
            self.notify("That eval ran the items without a prompt: nothing to open.", severity="warning")
            return
        pane.load_record(record)
        adapter = str(record.get("adapter") or "")
        if adapter and adapter not in pane.adapter_ids:
            self.notify(
                f"LoRA {adapter[:10]} is not a finished adapter here; running on the base model.", severity="warning"
            )
        model = str(record.get("model") or "").split(",")[0].strip()
        if kind != "eval" and model and model != self.model and self.current is None and self.eval_token is None:
            self.query_one("#model-input", Input).value = model
            self.load_model(model)
        self.query_one("#prompt-text").focus()
        self.notify("Re-opened in the editor: ctrl+r runs it.")

    def action_versions(self) -> None:
        from tui.screens.versions import VersionsScreen

        self.push_screen(VersionsScreen(self.prompts, self.query_one(PromptPane).prompt_name))

    # -- palette, help, editor, clipboard, layout -------------------------------------------------
    def action_add_adapter_folder(self) -> None:
        def add(path: str | None) -> None:
            if path and path.strip():
                self._add_adapter_folder(path.strip())

        from tui.screens.ask import AskScreen

        self.push_screen(AskScreen("A PEFT adapter folder (with adapter_config.json) to offer as a LoRA", ""), add)

    @work(thread=True, group="adapter-folder", exclusive=True)
    def _add_adapter_folder(self, path: str) -> None:
        try:
            adapter = self.workbench.add_adapter_folder(path)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.refresh_adapters(select=adapter.run_id)

    def use_adapter(self, adapter: str | None) -> None:
        select = self.query_one("#adapter-select", Select)
        if adapter is None:
            select.clear()
        else:
            select.value = adapter
        label = next((a.label for a in self.adapters if a.run_id == adapter), str(adapter)[:10])
        self.notify(f"Next runs use {'LoRA ' + label if adapter else 'the base model'}.")

    def action_focus_model(self) -> None:
        self.query_one("#model-input", Input).focus()

    def action_stop_training(self) -> None:
        self.training.action_stop()

    def action_export_history(self) -> None:
        from tui.screens.history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen):
            self.action_history()
        self.call_after_refresh(self._export_from_history)

    def _export_from_history(self) -> None:
        from tui.screens.history import HistoryScreen

        if isinstance(self.screen, HistoryScreen):
            self.screen.action_export()

    def action_help(self) -> None:
        """Help for the focused pane: what it is for, and the keys that work there now."""
        node = self.focused
        owner = next(
            (n for n in ([node, *node.ancestors_with_self] if node else []) if getattr(n, "HELP", None)), self.screen
        )
        title = getattr(owner, "BORDER_TITLE", None) or type(owner).__name__.removesuffix("Screen")
        about = with_keys(self, getattr(owner, "HELP", None) or self.HELP, binding_owners())
        keys, seen = [], set()
        for active in self.active_bindings.values():
            binding = active.binding
            if not binding.description or (binding.id, binding.action) in seen:
                continue
            seen.add((binding.id, binding.action))
            keys.append((self.get_key_display(binding), binding.description, binding.id or ""))
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(str(title), about, keys))

    def action_copy_output(self) -> None:
        if self._not_mounted_yet(self.action_copy_output):
            return
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
        panes = ("prompt-pane", "training-pane", "right")
        node = self.focused
        pane = next((n for n in (node.ancestors_with_self if node else []) if n.id in panes), None)
        if isinstance(pane, Widget):
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
                self.notify(
                    f"cannot start editor '{editor}': {getattr(exc, 'strerror', None) or exc}", severity="error"
                )
                return
            if done.returncode != 0:
                self.notify(f"editor exited with {done.returncode}; the prompt is unchanged", severity="warning")
                return
            pane.text = path.read_text(encoding="utf-8", errors="replace").removesuffix("\n")
        finally:
            path.unlink(missing_ok=True)
        self.query_one("#prompt-text").focus()

    def in_flight(self) -> list:
        """The workers doing a piece of work: all but the folder watchers, which run until the app ends."""
        return [w for w in self.workers if w.is_running and not w.group.endswith("-watch")]

    async def settled(self) -> None:
        """Wait for the work in flight."""
        busy = self.in_flight()
        if busy:  # an empty list would mean every worker
            await self.workers.wait_for_complete(busy)

    def _handle_exception(self, error: Exception) -> None:
        """A worker's message that arrives while the app quits finds its widgets gone: that is no crash."""
        if isinstance(error, NoMatches) and (self._exit or self._closing or not self.screen_stack):
            return
        super()._handle_exception(error)

    def on_unmount(self) -> None:
        gc.unfreeze()  # what the app froze at start is the collector's again (a process that goes on)
        self.stop_watching.set()
        if self.editor_state is not None:  # changed since the last write: kept now (one small file)
            self._remember_editor()
        if self._client is None:  # quit before the model load began
            return
        if self.current is not None and self.current["rid"]:  # quitting mid-stream: stop, do not wait
            self._client.cancel(self.current["rid"])
        self.eval_cancel.set()
        self._client.close()
