"""The main screen: the prompt editor, the training monitor, the results (output and eval matrix) and the
dataset form they share.

It owns the workbench keys, the zoom and layout, the external editor, the model load and the dataset form,
and it is where the panes' messages land: a pane never calls the screen, it posts (`Reveal`, `Announce`,
`WorkbenchFailed`, ...) and a handler here decides. What a workbench key starts is in `tui.workflows`; each
workflow's work lives with its owner: generation in `tui.generation`, evals and the demo comparison in the
eval pane, training runs in the training pane, the verdict's cells in the verdict screens. Whatever reads
disk, takes a lock or starts a process runs in a thread worker of the node that owns it.
"""

from __future__ import annotations

from asyncio import gather
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from core.errors import TunelabError
from tui.commands import Bind, Command
from tui.generation import Generation, Generations
from tui.key_order import after_start, in_key_order
from tui.messages import (
    Announce,
    CompareStage,
    EditorRestored,
    FinalLook,
    FirstStart,
    GenerationChunk,
    GenerationDone,
    GenerationStarted,
    ModelLoading,
    ModelReady,
    OptimizeAsked,
    Reveal,
    RunStarted,
    VerdictReady,
    WorkbenchFailed,
    WorkerCrashed,
    WorkerError,
)
from tui.widgets.dataset_form import DatasetForm
from tui.widgets.deferred import Deferred
from tui.widgets.prompt_pane import PromptPane
from tui.widgets.results_pane import ResultsPane
from tui.workflows import Workflows

if TYPE_CHECKING:  # imported after the first frame (the app's start-up worker), where they are used
    from tui.app import TunelabApp
    from tui.widgets.eval_pane import EvalPane
    from tui.widgets.training_pane import TrainingPane


class MainScreen(Screen[None]):
    HELP = (
        "tunelab: the prompt on the left (<run> runs, <eval> evaluates), training below it (<train>), "
        "results and the eval matrix on the right, history on <history>, every action in the palette "
        "(ctrl+p). <zoom> zooms the focused pane, <toggle-layout> stacks the panes, <edit-prompt> edits the "
        "prompt in $EDITOR."
    )
    BINDINGS = [  # each is a palette entry too: `palette` its name there, `tooltip` its help
        Bind("ctrl+r", "run", "Run", id="run", priority=True, palette="prompt: Run the prompt",
             tooltip="generate from the prompt on screen"),
        Bind("ctrl+g", "eval", "Eval", id="eval", priority=True, palette="eval: Evaluate",
             tooltip="the prompt against no prompt on the eval dataset"),
        Bind("ctrl+t", "rendered", "Rendered", id="rendered", priority=True, show=False,
             palette="prompt: Show the rendered prompt", tooltip="exactly as the model sees it"),
        Bind("ctrl+o", "versions", "Versions", id="versions", priority=True, show=False,
             palette="prompt: Prompt versions", tooltip="and a diff between any two"),
        Bind("ctrl+n", "train", "Train", id="train", priority=True, palette="training: New training run",
             tooltip="LoRA on the workbench's dataset"),
        Bind("f8", "history", "History", id="history", priority=True, palette="history: Open history",
             tooltip="search, label, re-open and export"),
        Bind("f9", "verdict", "Verdict", id="verdict", priority=True, palette="eval: Verdict",
             tooltip="prompt, LoRA, or both? the grid of the newest eval"),
        Bind("f4", "edit_prompt", "Editor", id="edit-prompt", show=False, priority=True,
             palette="prompt: Edit the prompt in $EDITOR", tooltip="then come back to it"),
        Bind("f6", "zoom", "Zoom", id="zoom", show=False, priority=True,  # priority: text areas bind f6/f7
             palette="view: Zoom the focused pane", tooltip="maximize it, and back"),
        Bind("f7", "toggle_layout", "Layout", id="toggle-layout", show=False, priority=True,
             palette="view: Toggle layout", tooltip="side by side or stacked"),
        Bind("escape", "cancel", "Cancel", id="cancel", show=False,  # the status line says "esc cancels"
             palette="prompt: Cancel", tooltip="the generation or eval in progress"),
    ]  # fmt: skip

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.model_ready = False
        self.linear_modules: list[str] = []  # offered as LoRA targets in the new-run form
        self.generations = Generations(self)
        self.prompt = PromptPane(model, id="prompt-pane")  # kept: what it holds is written at exit
        self.dataset = DatasetForm(id="dataset-form", classes="field-row")  # what evals, runs and training read
        self.flows = Workflows(self)
        self.busy_since_start = False  # a run, eval or training started: no first-start offer any more
        self.waiting: list[Callable[[], None]] = []  # the actions of keys pressed before the start

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.prompt
                yield Deferred(self._training_pane)
            with Lazy(TabbedContent(id="right")):  # results and eval matrix: empty at start, so just after it
                with TabPane("Output", id="tab-output"):
                    yield ResultsPane(id="results-pane")
                with TabPane("Eval", id="tab-eval"):
                    yield self.dataset
                    yield Deferred(self._eval_pane)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt-text").focus()

    @property
    def tunelab(self) -> TunelabApp:
        return cast("TunelabApp", self.app)

    @property
    def generation(self) -> Generation | None:
        return self.generations.current

    @property
    def results(self) -> ResultsPane:
        return self.query_one(ResultsPane)

    @property
    def evals(self) -> EvalPane:
        return cast("EvalPane", self.query_one("#eval-pane"))

    @property
    def training(self) -> TrainingPane:
        return cast("TrainingPane", self.query_one("#training-pane"))

    def _training_pane(self) -> TrainingPane:
        from tui.widgets.training_pane import TrainingPane

        return TrainingPane(lambda: self.tunelab.workbench, id="training-pane")

    def _eval_pane(self) -> EvalPane:
        from tui.widgets.eval_pane import EvalPane

        return EvalPane(id="eval-pane")

    async def start(self) -> None:
        """Once the start-up imports are done (in the task of the start-up worker's hand-over, never the
        screen's): fill the deferred panes, and once every pane is mounted with all it holds, load the
        model, read the adapters and the kept prompt, and act on the keys pressed before."""
        while self.query(Lazy):  # Textual's mount just after the first frame (one holds the Eval tab's slot)
            await self.wait_for_refresh()
        await gather(*(slot.fill() for slot in self.query(Deferred)))
        self.load_model(self.model)
        self.prompt.refresh_adapters(select=self.tunelab.options.adapter)
        self._check_first_start()
        self.tunelab.started = True
        waiting, self.waiting = self.waiting, []
        for action in waiting:
            action()

    def show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def out_of_sight(self, pane_id: str) -> bool:
        """True when `pane_id`'s tab is not shown: another tab, a dialog or history on top, another pane zoomed."""
        return (
            self.app.screen is not self
            or self.query_one(TabbedContent).active != pane_id
            or (self.maximized is not None and self.maximized is not self.query_one(TabbedContent))
        )

    def error(self, message: str) -> None:
        self.results.set_status(message, error=True)
        self.notify(message, severity="error", timeout=8)

    def got_going(self) -> None:
        """A run, eval or training started: no first-start offer any more."""
        self.busy_since_start = True
        self.results.offer_demo(False)

    # -- what the panes ask of the screen ---------------------------------------------------------------
    @on(Reveal)
    def reveal(self, message: Reveal) -> None:
        if (tab := self._tab_of(message.pane)) is not None:
            self.show_tab(tab)

    @on(Announce)
    def announce(self, message: Announce) -> None:
        tab = self._tab_of(message.pane)
        if tab is None or self.out_of_sight(tab):
            self.notify(message.text)

    def _tab_of(self, pane: Widget) -> str | None:
        return next((node.id for node in pane.ancestors_with_self if isinstance(node, TabPane)), None)

    @on(WorkbenchFailed)
    def workbench_failed(self, message: WorkbenchFailed) -> None:
        self.error(message.error)

    # -- start-up: the kept prompt, the first-start offer -----------------------------------------
    @work(thread=True, group="first-start", exclusive=True)
    def _check_first_start(self) -> None:
        """The prompt kept from the last session comes back; with no eval yet, the demo comparison is offered."""
        workbench = self.tunelab.workbench
        try:
            state = workbench.remembered_editor()
            first = workbench.first_start()
            recovered = workbench.recover_evals()
        except (OSError, TunelabError):
            state, first, recovered = None, False, []
        if recovered:  # notify is thread-safe
            self.notify(f"Recovered {len(recovered)} eval(s) cut short last time: partial, resumable.")
        self.post_message(EditorRestored(state or {}))
        if first:
            self.post_message(FirstStart())

    @on(EditorRestored)
    def editor_restored(self, message: EditorRestored) -> None:
        self.prompt.restore(message.state, busy=self.generation is not None)

    @on(FirstStart)
    def first_start(self) -> None:
        if not self.busy_since_start:  # the user got going before this check came back: offer nothing
            self.results.offer_demo(True)

    # -- the model and its adapters -----------------------------------------------------------------
    def load_model(self, model: str) -> None:
        self.model, self.model_ready = model, False
        self.results.set_status(f"loading {model}…")
        self.results.loading = True
        self.tunelab.send_load(replace(self.tunelab.options, model=model))

    @on(Input.Submitted, "#model-input")
    def model_submitted(self, event: Input.Submitted) -> None:
        if self.generation or self.evals.token:
            self.notify("Finish or cancel the current run before loading another model.", severity="warning")
        elif event.value.strip():
            self.load_model(event.value.strip())

    @on(ModelLoading)
    def model_loading(self, message: ModelLoading) -> None:
        self.results.set_status(f"loading {message.event.model}…")  # a restart after a crash says it too

    @on(ModelReady)
    def model_loaded(self, message: ModelReady) -> None:
        info = message.event.info
        self.model_ready = True
        self.linear_modules = info.linear_modules
        self.results.loading = False
        self.app.sub_title = info.title
        if self.generation is None:
            self.results.set_status(f"ready: {info.model} loaded in {info.load_s:.1f}s")

    def _model_failed(self, message: str) -> None:
        self.results.loading = False
        self.app.sub_title = "no model"
        self.error(message)

    def action_add_adapter_folder(self) -> None:
        self.prompt.ask_adapter_folder()

    # -- generation ------------------------------------------------------------------------------
    @in_key_order
    @after_start
    def action_run(self) -> None:
        self.flows.run()

    def action_cancel(self) -> None:
        if self.generations.cancel():
            self.results.set_status("cancelling…")
        elif self.evals.token is not None:
            self.evals.cancel.set()
            self.notify("Cancelling the eval…")

    @on(GenerationStarted)
    def generation_started(self, message: GenerationStarted) -> None:
        if self.generations.started(message.token, message.event.rendered_prompt):
            self.results.set_status("generating… (esc cancels)")

    @on(GenerationChunk)
    def generation_chunk(self, message: GenerationChunk) -> None:
        if (elapsed := self.generations.chunk(message.token, message.event.text)) is not None:
            self.results.append(message.event.text)
            self.results.progress(message.event.tokens, elapsed)

    @on(GenerationDone)
    def generation_done(self, message: GenerationDone) -> None:
        if self.generations.answering(message.token) is None:
            return
        result = message.event.result
        self.results.finish(result)
        if self.out_of_sight("tab-output"):
            self.notify(f"Run done: {result.completion_tokens} tokens, {result.stop_reason}.")
        self.generations.finish(status=result.status, result=result.to_dict())

    @on(WorkerCrashed)
    def worker_crashed(self, message: WorkerCrashed) -> None:
        if message.token is not None:  # the open request's copy; the client's own copy follows
            return
        self.model_ready, said = False, message.event.message
        self.generations.finish(status="error", error=said)  # saved as failed, with why
        self._model_failed(said if "restarts" in said else f"{said} (restarts on the next run)")

    @on(WorkerError)
    def worker_error(self, message: WorkerError) -> None:
        event = message.event
        if event.op == "load":
            self._model_failed(event.message)
            self.generations.finish(status="error", error=event.message)
        elif self.generations.answering(message.token) is not None:
            self.results.set_status(event.message, error=True)
            self.generations.finish(status="error", error=event.message)
        elif message.token is None:  # a stale generation's error is dropped with it
            self.error(event.message)

    @in_key_order
    @after_start
    def action_rendered(self) -> None:
        if (form := self.flows.form()) is not None:
            self.prompt.show_rendered(*form)

    # -- evals, the demo comparison and the verdict ---------------------------------------------------
    @in_key_order
    @after_start
    def action_eval(self) -> None:
        self.flows.eval()

    @after_start
    def action_compare_demo(self) -> None:
        self.flows.compare_demo()

    @on(CompareStage)
    def compare_stage(self, message: CompareStage) -> None:
        if message.token == self.evals.token:
            self.results.set_status(f"Compare on the demo task · {message.text}")

    @after_start
    def action_verdict(self) -> None:
        self.evals.open_verdict()

    @on(VerdictReady)
    def verdict_ready(self, message: VerdictReady) -> None:
        from tui.screens.verdict import VerdictScreen

        if isinstance(self.app.screen, VerdictScreen):
            self.app.pop_screen()
        self.app.push_screen(VerdictScreen(message.comparison))

    @on(FinalLook)
    def final_look(self, message: FinalLook) -> None:
        self.evals.run_final(message.summary)

    @on(OptimizeAsked)
    @after_start
    def optimize(self) -> None:
        """The prompt pane's optimize key (or the palette's entry): the search screen on the prompt on screen."""
        self.flows.optimize()

    # -- training ------------------------------------------------------------------------------
    @in_key_order
    @after_start
    def action_train(self) -> None:
        self.flows.train()

    @on(RunStarted)
    def run_started(self, message: RunStarted) -> None:
        self.training.select(message.run_id)
        self.notify(f"Training run {message.run_id[:10]} started; it keeps running if you quit.")

    def on_training_pane_run_ended(self, message: TrainingPane.RunEnded) -> None:
        """One notice per ended run (with its error, if any); adapters may have changed."""
        severity: Literal["error", "information"] = "error" if message.state == "failed" else "information"
        self.notify(
            f"Training run {message.run_id[:10]} {message.state}" + (f": {message.error}" if message.error else "."),
            severity=severity,
        )
        self.prompt.refresh_adapters()

    def on_training_pane_adapters_changed(self) -> None:
        self.prompt.refresh_adapters()

    # -- history, versions, the editor, the layout ------------------------------------------------
    def action_history(self, export: bool = False) -> None:
        from tui.screens.history import HistoryScreen

        history = HistoryScreen(self.tunelab.workbench.history, self.tunelab.root, export=export)
        self.app.push_screen(history, self.reopen)

    def reopen(self, record: dict[str, Any] | None) -> None:
        self.flows.reopen(record)

    def palette_commands(self) -> Iterator[Command]:
        """The palette's entries with no key (the keys' are the bindings above; the panes offer their own)."""
        yield Command(
            "history: Export history", "the history screen's export of what matches", partial(self.action_history, True)
        )

    @in_key_order
    def action_versions(self) -> None:
        from tui.screens.versions import VersionsScreen

        self.app.push_screen(VersionsScreen(self.tunelab.workbench.prompts, self.prompt.prompt_name))

    def action_zoom(self) -> None:
        """Maximize the pane that holds the focus; again to restore the layout."""
        if self.maximized is not None:
            self.minimize()
            return
        panes = ("prompt-pane", "training-pane", "right")
        node = self.focused
        pane = next((n for n in (node.ancestors_with_self if node else []) if n.id in panes), None)
        if isinstance(pane, Widget):
            self.maximized = pane

    def action_toggle_layout(self) -> None:
        """Side by side (wide terminals) or stacked (tall ones)."""
        self.query_one("#main").toggle_class("-stacked")

    @in_key_order
    def action_edit_prompt(self) -> None:
        from tui.editor import edit_in_editor

        text = edit_in_editor(self.app, self.prompt.text)
        if text is not None:
            self.prompt.text = text
            self.query_one("#prompt-text").focus()

    def close(self) -> None:
        """The app is quitting: keep the prompt on screen, stop what is in flight (never wait for it)."""
        if self.prompt.editor_state is not None:  # changed since the last write: kept now (one small file)
            self.prompt.remember()
        if self.tunelab.has_client:
            self.generations.close()
