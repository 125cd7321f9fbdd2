"""The training monitor: the selected run's progress, rates and loss curves, polled from its folder.

Runs are child processes that outlive the app, so this pane only reads files (`metrics.jsonl` from
where it left off, `status.json`) a few times a second; starting the app again re-attaches at once.
`s` stops and saves (again: kill), `x` cancels, `u` resumes, `[`/`]` switch runs, `o` overlays the
recent runs' curves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from core.errors import TunelabError
from core.training.runs import LIVE, Runs
from tui.widgets.loss_chart import LossChart

POLL_S = 0.33
STOP_GRACE_S = 30.0
OVERLAY_STYLES = ("magenta", "green", "blue", "red")


@dataclass
class Watched:
    """What has been read of one run so far."""

    run_id: str
    offset: int = 0
    loss: list[tuple[float, float]] = field(default_factory=list)
    eval_loss: list[tuple[float, float]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)


class TrainingPane(Vertical):
    BORDER_TITLE = "Training"
    HELP = ("LoRA runs, each a process of its own that keeps going when tunelab quits: loss and eval loss "
            "curves, rate, ETA and checkpoints. ctrl+n starts a run; s stops and saves (twice: at once), "
            "x cancels, u resumes, [ and ] switch runs, o overlays the other runs' curves.")

    class RunEnded(Message):
        """A watched run left the live states (done, stopped, failed, ...): adapters may have changed."""

        def __init__(self, run_id: str, state: str) -> None:
            super().__init__()
            self.run_id, self.state = run_id, state

    BINDINGS = [
        Binding("s", "stop", "Stop", id="train-stop"),
        Binding("x", "cancel_run", "Cancel run", id="train-cancel"),
        Binding("u", "resume", "Resume", id="train-resume"),
        Binding("left_square_bracket", "switch(-1)", "Prev run", id="train-prev", show=False),
        Binding("right_square_bracket", "switch(1)", "Next run", id="train-next", show=False),
        Binding("o", "overlay", "Overlay", id="train-overlay", show=False),
    ]

    def __init__(self, root: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs = Runs(root)
        self.watched: dict[str, Watched] = {}
        self.selected: str | None = None
        self.overlay = False
        self.stop_requested_at: float | None = None
        self.last_state: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("No training run yet: ctrl+n starts one.", id="training-status")
        yield ProgressBar(id="training-progress", show_eta=False)
        yield LossChart(id="loss-chart")

    def on_mount(self) -> None:
        self.can_focus = True
        self.add_class("-idle")  # no bar or chart until there is a run to show
        existing = self.runs.list()
        if existing:
            self.select(existing[0]["id"])  # re-attach to the newest run
        self.set_interval(POLL_S, self.poll)

    def select(self, run_id: str) -> None:
        self.selected = run_id
        self.remove_class("-idle")
        self.watched.setdefault(run_id, Watched(run_id))
        self.poll(force=True)

    def _read(self, run_id: str) -> bool:
        watched = self.watched.setdefault(run_id, Watched(run_id))
        rows, watched.offset = self.runs.metrics(run_id, watched.offset)
        for row in rows:
            watched.loss.append((row["step"], row["loss"]))
            if row.get("eval_loss") is not None:
                watched.eval_loss.append((row["step"], row["eval_loss"]))
            watched.last = row
        return bool(rows)

    def poll(self, force: bool = False) -> None:
        if self.selected is None:
            return
        try:
            changed = self._read(self.selected) or force
            status = self.runs.status(self.selected)
        except TunelabError:
            return
        state = status["state"]
        if self.last_state.get(self.selected) not in (None, state) and state not in LIVE:
            self.app.notify(f"Training run {self.selected[:10]} {state}" +
                            (f": {status['error']}" if status.get("error") else ""),
                            severity="error" if state == "failed" else "information")
            self.post_message(self.RunEnded(self.selected, state))
        if self.last_state.get(self.selected) != state:
            changed = True
        self.last_state[self.selected] = state
        if state in LIVE and self.stop_requested_at and time.monotonic() - self.stop_requested_at > STOP_GRACE_S:
            self.runs.kill(self.selected)  # the watchdog: it ignored the stop
        if state not in LIVE:
            self.stop_requested_at = None
        if changed:
            self._show(status)

    def _show(self, status: dict[str, Any]) -> None:
        watched = self.watched[self.selected]
        last = watched.last
        total = status.get("total_steps") or 0
        parts = [f"{self.selected[:10]} {status['state']}", f"step {status.get('step', 0)}/{total or '?'}"]
        if last:
            parts += [f"loss {last['loss']:.4f}", f"lr {last['lr']:.1e}", f"gn {last['grad_norm']:.2f}",
                      f"{last['tok_s']:.0f} tok/s"]
            if last.get("eta_s") is not None and status["state"] in LIVE:
                parts.append(f"eta {last['eta_s']:.0f}s")
        if status.get("eval_loss") is not None:
            parts.append(f"eval {status['eval_loss']:.4f}")
        if status["checkpoints"]:
            parts.append(f"{len(status['checkpoints'])} ckpt, last {status['checkpoints'][-1]}")
        if status.get("error"):
            parts.append(status["error"])
        self.query_one("#training-status", Static).update(" · ".join(parts))
        self.query_one("#training-progress", ProgressBar).update(total=total or None, progress=status.get("step", 0))
        series = [(watched.loss, "cyan"), (watched.eval_loss, "yellow")]
        if self.overlay:
            others = [r["id"] for r in self.runs.list() if r["id"] != self.selected][: len(OVERLAY_STYLES)]
            for run_id, style in zip(others, OVERLAY_STYLES):
                self._read(run_id)
                series.append((self.watched[run_id].loss, style))
        self.query_one(LossChart).set_series(series)

    def start(self, config) -> str:
        run_id = self.runs.create(config)
        self.runs.launch(run_id)
        self.select(run_id)
        return run_id

    def action_stop(self) -> None:
        if self.selected is None:
            return
        if self.stop_requested_at is not None:  # a second press escalates at once
            self.runs.kill(self.selected)
            self.app.notify("Run killed.", severity="warning")
        else:
            self.runs.stop(self.selected)
            self.stop_requested_at = time.monotonic()
            self.app.notify("Stopping: a checkpoint is saved at the next step (s again kills).")
        self.poll(force=True)

    def action_cancel_run(self) -> None:
        if self.selected is not None:
            self.runs.cancel(self.selected)
            self.app.notify("Cancelling: the run's checkpoints will be removed.")

    def action_resume(self) -> None:
        if self.selected is None:
            return
        try:
            self.runs.resume(self.selected)
        except TunelabError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.watched[self.selected] = Watched(self.selected)  # re-read the whole curve
        self.poll(force=True)

    def action_switch(self, delta: int) -> None:
        ids = [r["id"] for r in self.runs.list()]
        if ids:
            index = ids.index(self.selected) if self.selected in ids else 0
            self.select(ids[(index + delta) % len(ids)])

    def action_overlay(self) -> None:
        self.overlay = not self.overlay
        self.poll(force=True)
