"""The training monitor: the selected run's progress, rates and loss curves, read from its folder.

Runs are child processes that outlive the app, so this pane only reads files (`metrics.jsonl` from
where it left off, `status.json`) when the runs folder changes (watched, not polled; a heartbeat each
second catches a process that died or a stop that ran out of grace); starting the app again re-attaches at once.
`s` stops and saves (again: kill), `x` cancels, `u` resumes, `[`/`]` switch runs, `o` overlays the
recent runs' curves (a sweep's run: its sweep's other runs first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from core.errors import TunelabError
from tui.commands import Bind
from tui.messages import RunStarted, WorkbenchFailed
from tui.widgets.loss_chart import LossChart

if TYPE_CHECKING:  # the app imports the workbench after its first frame; this pane reads it from then on
    from core.data.prompts import PromptVersion
    from core.engine.options import ModelOptions
    from core.evals.plan import EvalRequest
    from core.storage.schemas import RunStatus
    from core.training.config import TrainConfig
    from core.training.runs import Runs
    from core.workbench.service import Workbench

HEARTBEAT_S = 1.0
LIST_EVERY_S = 2.0  # the whole runs folder is listed at most this often (the selected run: on every change)
OVERLAY_STYLES = ("magenta", "green", "blue", "red", "bright_magenta", "bright_green", "bright_blue")


@dataclass
class Watched:
    """What has been read of one run so far."""

    run_id: str
    offset: int = 0
    loss: list[tuple[float, float]] = field(default_factory=list)
    eval_loss: list[tuple[float, float]] = field(default_factory=list)
    pass_rate: list[tuple[float, float]] = field(default_factory=list)  # a run with eval_items scores its steps
    last: dict[str, Any] = field(default_factory=dict)

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:  # a diverged step's loss is None: a gap in the curve
            if row.get("loss") is not None:
                self.loss.append((row["step"], row["loss"]))
            if row.get("eval_loss") is not None:
                self.eval_loss.append((row["step"], row["eval_loss"]))
            if row.get("pass_rate") is not None:
                self.pass_rate.append((row["step"], row["pass_rate"] * 100))
            self.last = row


class TrainingPane(Vertical):
    DEFAULT_CSS = """
    TrainingPane {
        height: 2fr;
        min-height: 9;
        #training-status { height: auto; max-height: 2; }
        #training-progress { height: 1; }
        &.-idle #training-progress, &.-idle LossChart { display: none; }
        #pass-chart { display: none; }
        &.-scored #pass-chart { display: block; }
        #training-progress Bar { width: 1fr; }
    }
    """
    BORDER_TITLE = "Training"
    HELP = (
        "LoRA runs, each a process of its own that keeps going when tunelab quits: loss and eval loss "
        "curves, rate, ETA and checkpoints. <train> starts a run; <train-stop> stops and saves (twice: at once), "
        "<train-stop-sweep> stops the selected run's whole sweep, "
        "<train-cancel> cancels, <train-resume> resumes, <train-prev> and <train-next> switch runs, <train-overlay> overlays "
        "the other runs' curves (a sweep's own runs first)."
    )

    class RunEnded(Message):
        """A watched run left the live states (done, stopped, failed, ...): adapters may have changed."""

        def __init__(self, run_id: str, state: str, error: str | None = None) -> None:
            super().__init__()
            self.run_id, self.state, self.error = run_id, state, error

    class AdaptersChanged(Message):
        """A run finished that this pane was not watching (another tab, the CLI): the adapters changed."""

    BINDINGS = [
        Bind("s", "stop", "Stop", id="train-stop", palette="training: Stop the training run",
             tooltip="stop and save the selected run"),
        Bind("S", "stop_sweep", "Stop sweep", id="train-stop-sweep", show=False,
             palette="training: Stop the selected run's whole sweep"),
        Binding("x", "cancel_run", "Cancel run", id="train-cancel"),
        Binding("u", "resume", "Resume", id="train-resume"),
        Binding("left_square_bracket", "switch(-1)", "Prev run", id="train-prev", show=False),
        Binding("right_square_bracket", "switch(1)", "Next run", id="train-next", show=False),
        Binding("o", "overlay", "Overlay", id="train-overlay", show=False),
    ]  # fmt: skip

    class Snapshot(Message):
        """What a thread worker read of the runs folder: new metric rows from `offset` on, the status, the
        run ids (newest first) and, with the overlay on, the other runs' new rows."""

        def __init__(
            self,
            run_id: str | None,
            offset: int,
            rows: list[dict[str, Any]],
            new_offset: int,
            status: RunStatus | None,
            ids: list[str],
            others: dict[str, tuple[int, list, int]],
            killed: bool,
            force: bool,
            done: frozenset[str],
        ) -> None:
            super().__init__()
            self.run_id, self.offset, self.rows, self.new_offset = run_id, offset, rows, new_offset
            self.status, self.ids, self.others, self.killed, self.force = status, ids, others, killed, force
            self.done = done  # the runs that finished with an adapter

    def __init__(self, workbench: Callable[[], Workbench], **kwargs) -> None:
        super().__init__(**kwargs)
        self._workbench = workbench
        self.watched: dict[str, Watched] = {}
        self.selected: str | None = None
        self.overlay = False
        self.overlaid: list[str] = []  # the runs whose curves the overlay last read
        self.mates: tuple[tuple[str, int], list[str]] = (("", -1), [])  # (selected run, runs listed): its sweep's
        self.stop_asked = False
        self.pending = ""  # a stop, kill or cancel asked and not yet done, shown in the status line
        self.last_state: dict[str, str] = {}
        self.ids: list[str] = []
        self.reading = False  # a thread is reading the run folder
        self.done: frozenset[str] | None = None  # finished runs as last read
        self.listing: tuple[list[str], frozenset[str]] = ([], frozenset())  # run ids, finished ones
        self.listed_at = -LIST_EVERY_S
        self.stop_watching = threading.Event()

    @property
    def workbench(self) -> Workbench:
        return self._workbench()

    @property
    def runs(self) -> Runs:
        return self.workbench.runs

    def compose(self) -> ComposeResult:
        yield Static("No training run yet: ctrl+n starts one.", id="training-status")
        yield ProgressBar(id="training-progress", show_eta=False)
        yield LossChart(id="loss-chart")
        yield LossChart(id="pass-chart")  # pass rate (%) per scored checkpoint, shown once there is one

    def on_mount(self) -> None:
        self.can_focus = True
        self.add_class("-idle")  # no bar or chart until there is a run to show
        self.poll(force=True)  # with nothing selected yet, the newest run is re-attached
        self._watch()

    def on_unmount(self) -> None:
        self.stop_watching.set()

    class Changed(Message):
        """Something under the runs folder changed (or the heartbeat ticked)."""

    @work(thread=True, group="training-watch")
    def _watch(self) -> None:
        from core.storage.watch import watch_folder

        watch_folder(self.runs.folder, self.stop_watching, lambda: self.post_message(self.Changed()), HEARTBEAT_S)

    @on(Changed)
    def _changed(self) -> None:
        self.poll()

    def select(self, run_id: str) -> None:
        self.selected = run_id
        self.stop_asked, self.pending = False, ""
        self.remove_class("-idle")
        self.watched.setdefault(run_id, Watched(run_id))
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        if self.reading and not force:  # a slow disk never piles up reader threads
            return
        self.reading = True
        run_id = self.selected
        offset = self.watched[run_id].offset if run_id in self.watched else 0
        others = {r: w.offset for r, w in self.watched.items() if r != run_id} if self.overlay else {}
        self._read(run_id, offset, self.overlay, others, force)

    @work(thread=True, group="training-poll", exclusive=False)
    def _read(self, run_id: str | None, offset: int, overlay: bool, others: dict[str, int], force: bool) -> None:
        """Read the run folder off the UI loop; the watchdog kills a run that ignored its stop."""
        try:
            self._read_once(run_id, offset, overlay, others, force)
        finally:
            self.reading = False

    def _read_once(self, run_id: str | None, offset: int, overlay: bool, others: dict[str, int], force: bool) -> None:
        try:
            if run_id is None or force or time.monotonic() - self.listed_at >= LIST_EVERY_S:
                listed = self.runs.list()  # a run started or finished elsewhere shows up within LIST_EVERY_S
                self.listing = (
                    [status.id for status in listed],
                    frozenset(status.id for status in listed if status.state == "done" and status.adapter),
                )
                self.listed_at = time.monotonic()
            ids, done = self.listing
            if run_id is None:
                if not ids:
                    return
                run_id, offset = ids[0], 0  # re-attach to the newest run
            rows, new_offset = self.runs.metrics(run_id, offset)
            status = self.runs.status(run_id)
            killed = self.workbench.control.enforce_stop(run_id, status=status)
            if killed:
                status = self.runs.status(run_id)
            extra = {}
            if overlay:
                for other in self._overlay_ids(run_id, ids):
                    start = others.get(other, 0)
                    got, end = self.runs.metrics(other, start)
                    extra[other] = (start, got, end)
        except (OSError, TunelabError):
            return
        self.post_message(self.Snapshot(run_id, offset, rows, new_offset, status, ids, extra, killed, force, done))

    def _overlay_ids(self, run_id: str, ids: list[str]) -> list[str]:
        """The runs overlaid on the selected one: its sweep's other runs first, then the newest (read again
        when the runs listed change)."""
        from core.training.sweeps import members, sweep_of

        if self.mates[0] != (run_id, len(ids)):
            sweep = sweep_of(self.runs, run_id)
            mates = [m for m in members(self.runs, sweep["id"]) if m != run_id] if sweep else []
            self.mates = ((run_id, len(ids)), mates)
        return list(dict.fromkeys([*self.mates[1], *(i for i in ids if i != run_id)]))[: len(OVERLAY_STYLES)]

    @on(Snapshot)
    def apply(self, message: Snapshot) -> None:
        from core.training.runs import LIVE

        run_id = message.run_id
        if run_id is None or message.status is None:
            return
        if self.done is not None and message.done != self.done:
            self.post_message(self.AdaptersChanged())
        self.done = message.done
        self.ids = message.ids
        if self.selected is None:
            self.selected = run_id
            self.remove_class("-idle")
        if run_id != self.selected:
            return
        watched = self.watched.setdefault(run_id, Watched(run_id))
        changed = message.force
        if message.offset == watched.offset:  # a stale read (a newer one already applied) is dropped
            watched.add(message.rows)
            watched.offset = message.new_offset
            changed = changed or bool(message.rows)
        self.overlaid = list(message.others)
        for other, (start, rows, end) in message.others.items():
            w = self.watched.setdefault(other, Watched(other))
            if start == w.offset:
                w.add(rows)
                w.offset = end
        if message.killed:
            self.app.notify("The run ignored its stop; it was killed.", severity="warning")
        status = message.status
        state = status.state
        if self.last_state.get(run_id) not in (None, state) and state not in LIVE:
            self.post_message(self.RunEnded(run_id, state, status.error))
        if self.last_state.get(run_id) != state:
            changed = True
        self.last_state[run_id] = state
        if state not in LIVE:
            self.stop_asked, self.pending = False, ""
        if changed:
            self._show(status)

    def _show(self, status: RunStatus) -> None:
        from core.training.runs import LIVE, step_parts

        assert self.selected is not None
        watched = self.watched[self.selected]
        last = watched.last
        total = status.total_steps or 0
        parts = [f"{self.selected[:10]} {status.state}", f"step {status.step}/{total or '?'}"]
        if status.early_stop:  # why it ended before its last step comes first: the line may be cut
            parts.append(status.early_stop)
        if last:
            parts += step_parts(
                last, skip=("epoch", "eval_loss", "pass_rate") + (() if status.state in LIVE else ("eta_s",))
            )
        if status.eval_loss is not None:
            parts.append(f"eval {status.eval_loss:.4f}")
        if status.checkpoints:
            parts.append(f"{len(status.checkpoints)} ckpt, last {status.checkpoints[-1]}")
        rate, best, best_rate = status.pass_rate, status.best_checkpoint, status.best_pass_rate
        if rate is not None and best_rate is not None and best is not None:
            parts.append(f"pass {rate:.0%}, best {best[:16]} {best_rate:.0%}")
        if status.error:
            parts.append(status.error)
        if self.pending:
            parts.append(f"⏳ {self.pending}")
        self.query_one("#training-status", Static).update(" · ".join(parts))
        self.query_one("#training-progress", ProgressBar).update(total=total or None, progress=status.step)
        series = [(watched.loss, "cyan"), (watched.eval_loss, "yellow")]
        if self.overlay:
            series += [(self.watched[i].loss, style) for i, style in zip(self.overlaid, OVERLAY_STYLES)]
        stopped_at = ((status.step, "red"),) if status.early_stop else ()  # where the plateau ended the run
        self.query_one("#loss-chart", LossChart).set_series(series, stopped_at)
        self.set_class(bool(watched.pass_rate), "-scored")
        self.query_one("#pass-chart", LossChart).set_series([(watched.pass_rate, "green")])

    def ask_new_run(
        self,
        options: ModelOptions,
        request: EvalRequest,
        prompt_name: str,
        prompt: Callable[[], PromptVersion],
        linear_modules: list[str],
    ) -> None:
        """The new-run form, for the dataset form's dataset (and field mapping) and, if asked, the prompt on
        screen (`prompt()`, read when the form is done); its settings become a run started off the UI loop."""
        from tui.screens.train_form import TrainForm

        def start(settings: dict | None) -> None:
            if settings is None:
                return
            use_prompt, sweep = settings.pop("use_prompt"), settings.pop("sweep")
            try:
                config = self.workbench.train_config(
                    settings,
                    options=options,
                    dataset=request.dataset,
                    expected=request.expected,
                    mapping=request.mapping,
                    prompt=prompt() if use_prompt else None,
                )
            except TunelabError as exc:
                self.post_message(WorkbenchFailed(str(exc)))
                return
            if sweep:
                self.start_sweep(config, sweep)
            else:
                self.start_run(config)

        self.app.push_screen(TrainForm(request.dataset, prompt_name, linear_modules), start)

    @work(thread=True, group="train-start", exclusive=True)
    def start_run(self, config: TrainConfig) -> None:
        """Checking the data and starting the run's process happen off the UI loop; the screen selects it."""
        try:
            run_id = self.workbench.start_run(config)
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        self.post_message(RunStarted(run_id))

    @work(thread=True, group="train-sweep", exclusive=True)
    def start_sweep(self, config: TrainConfig, grid: str) -> None:
        """The form's sweep (`core.workbench.sweeping`): each run in turn, selected as it starts, then the best on
        dev said (a run that fails is one result among the others, as `train --sweep` has it). Quitting leaves
        the current run going and starts no more, as Ctrl+C does to `train --sweep`."""
        from textual.worker import get_current_worker

        from core.workbench.sweeping import SweepWatcher

        pane, worker = self, get_current_worker()

        class Follow(SweepWatcher):
            def status(self, run_id: str, status: RunStatus) -> None:
                if worker.is_cancelled:  # the pane is gone: stop waiting, the run goes on
                    raise TunelabError("sweep left: its live runs go on, the runs not started yet never will")

            def started(self, run_id: str, index: int, total: int, values: dict[str, Any]) -> None:
                shown = " ".join(f"{k}={v}" for k, v in values.items())
                pane.app.call_from_thread(pane.app.notify, f"Sweep run {index + 1}/{total}: {shown}")
                pane.post_message(RunStarted(run_id))

        try:
            plan = self.workbench.sweeps.plan(config, grid)
            result = self.workbench.sweeps.run(plan, Follow())
        except (OSError, TunelabError) as exc:
            self.post_message(WorkbenchFailed(str(exc)))
            return
        how = f"stopped after {len(result.ended)} of {plan.size} runs" if result.stopped else "ended"
        if result.best is None:
            said = f"Sweep {plan.id} {how}: no run finished with an eval loss or pass rate, so none is named best."
        else:
            run_id, metric, value = result.best
            said = f"Sweep {plan.id} {how}: best on dev {run_id} ({metric} {value:.4g}) of {plan.size} runs."
        self.app.call_from_thread(self.app.notify, said, timeout=15)

    @work(thread=True, group="training-control", exclusive=False)
    def _control(self, action: str, run_id: str) -> None:
        """Stop, kill, cancel or resume a run, or stop its sweep: files and signals, off the UI loop."""
        try:
            controls: dict[str, Callable[[str], object]] = {
                "stop": self.workbench.control.stop_run,
                "kill": self.workbench.control.kill_run,
                "cancel": self.runs.cancel,
                "resume": self.workbench.resume_run,
                "stop-sweep": self.workbench.sweeps.stop,
            }
            done = controls[action](run_id)
        except (OSError, TunelabError) as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        if action == "stop-sweep":
            sweep_id, asked = cast("tuple[str, list[str]]", done)
            stopping = f"stopping {', '.join(asked)}" if asked else "none was live"
            self.app.call_from_thread(self.app.notify, f"Sweep {sweep_id}: no more of its runs start; {stopping}.")
        self.app.call_from_thread(self._controlled, action, run_id)

    def _controlled(self, action: str, run_id: str) -> None:
        if action == "resume":
            self.watched[run_id] = Watched(run_id)  # re-read the whole curve
        self.poll(force=True)

    def action_stop(self) -> None:
        """A request shows in the status line (redrawn once the request is made); the run's end is the one
        toast (RunEnded)."""
        if self.selected is None:
            return
        if self.stop_asked:  # a second press escalates at once
            self._control("kill", self.selected)
            self.pending = "killing"
        else:
            self._control("stop", self.selected)
            self.stop_asked = True
            self.pending = "stopping: a checkpoint is saved at the next step (s again kills)"

    def action_stop_sweep(self) -> None:
        if self.selected is not None:
            self._control("stop-sweep", self.selected)

    def action_cancel_run(self) -> None:
        if self.selected is not None:
            self._control("cancel", self.selected)
            self.pending = "cancelling: the run's checkpoints will be removed"

    def action_resume(self) -> None:
        if self.selected is not None:
            self._control("resume", self.selected)

    def action_switch(self, delta: int) -> None:
        if self.ids:
            index = self.ids.index(self.selected) if self.selected in self.ids else 0
            self.select(self.ids[(index + delta) % len(self.ids)])

    def action_overlay(self) -> None:
        self.overlay = not self.overlay
        self.poll(force=True)
