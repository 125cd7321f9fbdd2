"""The tunelab app: config, themes, keymap, start-up, the model worker's client, the workbench, help and
shutdown. The main screen (`tui.screens.main`) owns the panes and their workflows.

Every use case is a `core.workbench.Workbench` call, made in a thread worker of the node that owns it when
it reads disk, takes a lock or starts a process; model work happens in the model worker child
(`core.engine.client`), whose typed events reach the main screen as one message class each. Nothing here
imports torch.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widget import MountError

from core import __version__
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.storage.config import config_path, load_config, save_setting, themes_dir
from core.storage.paths import data_dir, logs_dir
from tui.cli.guard import error_line
from tui.commands import Bind, Command
from tui.keymap import bad_keys, binding_ids, binding_owners, with_keys
from tui.messages import ModelReady, WorkerError, worker_message
from tui.screens.main import MainScreen
from tui.themes import DEFAULT_THEME, folder_stamp, shipped_themes, user_themes

if TYPE_CHECKING:  # imported after the first frame (`_after_first_frame`), where they are used
    from core.engine import protocol as wire
    from core.engine.client import ModelWorkerClient
    from core.engine.engines import WorkerEngine
    from core.workbench.service import Workbench

LATER = (  # what the first frame does not need, imported by a thread worker right after it (with every
    # screen and widget module, which `binding_owners` imports to find their keys)
    "core.engine.client",
    "core.workbench.service",
    "core.workbench.compare",
    "tui.palette",
    "tui.compare_progress",
)


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
    HELP = MainScreen.HELP  # F1 where nothing focused has help of its own
    BINDINGS = [
        Bind("f1", "help", "Help", id="help", priority=True,  # priority: text areas bind f6/f7 themselves
             palette="help: Help", tooltip="keys for the focused pane"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]  # fmt: skip

    def __init__(
        self,
        options: ModelOptions | str = ModelOptions(),
        *,
        client_factory: Callable[[Callable[[wire.Event], None]], ModelWorkerClient] = default_client,
        home: Path | None = None,
    ) -> None:
        super().__init__()
        self.options = ModelOptions(options) if isinstance(options, str) else options
        self.client_factory = client_factory
        self.root = home or data_dir()
        self._client: ModelWorkerClient | None = None
        self._workbench: Workbench | None = None
        self._main: MainScreen
        self._made = threading.Lock()  # the client and the workbench are made once, by whichever thread is first
        self.started = False  # every part of the screen mounted and the start-up work begun (tests wait on it)
        self.problems: list[str] = []  # config and theme problems, shown once the screen is up
        self.stop_watching = threading.Event()  # ends the theme watcher at exit
        self._apply_config()

    def get_default_screen(self) -> MainScreen:
        self._main = MainScreen(self.options.model)
        return self._main

    @property
    def main(self) -> MainScreen:
        """The main screen (the bottom of the stack, whatever is on top of it; kept after it closes)."""
        return self._main

    @property
    def client(self) -> ModelWorkerClient:
        """The model worker's client, made on first use (by the model load, right after the first frame)."""
        with self._made:
            if self._client is None:
                self._client = self.client_factory(self.post_worker_event)
            return self._client

    @property
    def local_engine(self) -> WorkerEngine:
        """The engine local models run on here: the model worker, on the model the main screen loaded."""
        from core.engine.engines import WorkerEngine

        return WorkerEngine(self.client, self.main.model, self.options.numerics())

    @property
    def has_client(self) -> bool:
        return self._client is not None

    @property
    def workbench(self) -> Workbench:
        """The workbench, made on first use (by the thread worker that runs after the first frame)."""
        with self._made:
            if self._workbench is None:
                from core.workbench.service import Workbench

                self._workbench = Workbench(self.root)
            return self._workbench

    def post_worker_event(self, event: wire.Event, token: str | None = None) -> None:
        """From the client's reader thread: one typed message per event, tagged with the request's token,
        for the main screen (which owns what the events answer)."""
        if (message := worker_message(event, token)) is not None:
            self.main.post_message(message)

    def palette_commands(self) -> Iterator[Command]:
        yield Command(
            "model: Restart the model worker",
            "kill it (a worker that stopped answering is also killed by itself) and load the model afresh",
            self.restart_worker,
        )
        yield Command(
            "verdict: Data-budget curve",
            "the last compare --budget: pass rate against labelled rows for the best prompt, the LoRA and both",
            self.budget_curve,
        )

    def budget_curve(self) -> None:
        from tui.screens.budget_curve import open_budget_curve

        open_budget_curve(self, self.root)

    @work(thread=True, group="model-restart", exclusive=True)
    def restart_worker(self) -> None:
        """Kill the model worker (hung, or just to start clean) and load the model again in a fresh one; what
        was in flight ends crashed, and is saved as such."""
        if self._client is not None:
            self._client.kill()
        self.call_from_thread(self.main.load_model, self.main.model)

    @work(thread=True, group="model-load", exclusive=True)
    def send_load(self, options: ModelOptions) -> None:
        """Starting the worker process happens off the UI loop; a served model needs no worker (its
        endpoint is checked here)."""
        from core.engine import protocol as wire
        from core.engine.engines import is_local
        from core.engine.served import endpoint

        try:
            if not is_local(options.model):
                point = endpoint(options.model)
                info = wire.ModelInfo(model=point.name, device="served", dtype=point.model)
                self.main.post_message(ModelReady(wire.Ready(info)))
                return
            self.client.load(options)
        except TunelabError as exc:
            self.main.post_message(WorkerError(wire.Error(str(exc), None, "load")))

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
        self.call_after_refresh(self._after_first_frame)  # its imports would hold the GIL mid-frame

    @work(thread=True, group="start", exclusive=True)
    def _after_first_frame(self) -> None:
        """What the first frame does not need, off the UI loop: the modules of every screen and use case,
        the workbench, then the main screen's start (model load, adapters, kept prompt), the keymap check
        and the themes watcher."""
        for module in LATER:
            importlib.import_module(module)
        binding_owners()  # imports every screen and widget module (a disk listing): cached here, never on the loop
        try:
            self.workbench  # noqa: B018 -- made here, not by the first handler that needs it on the loop
        except (OSError, TunelabError) as exc:  # a data dir that cannot be used: one line, as the CLI says it
            self.call_from_thread(self.exit, None, 2, error_line(exc))
            return
        gc.freeze()  # the startup heap is never scanned again: a full collection of it stalls the loop ~50 ms
        self.call_from_thread(self._started)  # type: ignore[arg-type]  # awaited; Textual's hint rejects an async None

    async def _started(self) -> None:
        self._check_keymap()
        self._watch_user_themes()
        await self.main.start()

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

    def in_flight(self) -> list:
        """The workers doing a piece of work: all but the folder watchers, which run until the app ends."""
        return [w for w in self.workers if w.is_running and not w.group.endswith("-watch")]

    async def settled(self) -> None:
        """Wait for the work in flight: the workers, and a generation request being sent."""
        sender = self.main.generations.sender
        if sender is not None and sender.is_alive():
            await asyncio.to_thread(sender.join)
        busy = self.in_flight()
        if busy:  # an empty list would mean every worker
            await self.workers.wait_for_complete(busy)

    def _handle_exception(self, error: Exception) -> None:
        """A worker's message that arrives while the app quits finds its widgets gone, and a pane mounting
        just after the first frame finds its parent gone: that is no crash."""
        if isinstance(error, (NoMatches, MountError)) and (self._exit or self._closing or not self.screen_stack):
            return
        super()._handle_exception(error)

    def on_unmount(self) -> None:
        gc.unfreeze()  # what the app froze at start is the collector's again (a process that goes on)
        self.stop_watching.set()
        self.main.close()
        if self._client is not None:
            self._client.close()
