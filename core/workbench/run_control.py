"""Stopping, killing and the stop watchdog of training runs: the workbench's `control` service."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.training.runs import LIVE, Runs

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus

STOP_GRACE_S = 30.0


class RunControl:
    def __init__(self, runs: Runs) -> None:
        self.runs = runs

    def stop_run(self, run_id: str) -> None:
        """Stop and save at the next step; `enforce_stop` kills it once the grace is over."""
        self.runs.stop(run_id)

    def kill_run(self, run_id: str) -> str:
        """Stop now, without saving; a run that already ended keeps its state and adapter."""
        status = self.runs.status(run_id)
        if self.runs.kill(run_id):
            return f"killed {status.id}"
        return f"{status.id} is not running ({status.state}); nothing killed"

    def enforce_stop(self, run_id: str, grace: float = STOP_GRACE_S, status: RunStatus | None = None) -> bool:
        """The watchdog: a run still live `grace` seconds after its stop request is killed. True if killed.
        `status`: the run's status when the caller has just read it."""
        status = status if status is not None else self.runs.status(run_id)
        asked = status.stop_requested_at
        if status.state in LIVE and asked is not None and time.time() - asked > grace:
            return self.runs.kill(run_id)
        return False

    def wait_ended(self, run_id: str, on_status: Callable[[RunStatus], object], poll: float = 0.5) -> RunStatus:
        """Read the run's status until it leaves the live states; `on_status` sees each read first (it may
        raise to stop waiting, and the run goes on)."""
        while True:
            status = self.runs.status(run_id)
            on_status(status)
            if status.state not in LIVE:  # `created`: never launched (a started run is `starting` at once)
                return status
            time.sleep(poll)

    def stop_and_wait(self, run_id: str, grace: float = STOP_GRACE_S, poll: float = 0.2) -> RunStatus:
        self.stop_run(run_id)
        return self.wait_stopped(run_id, grace, poll)

    def wait_stopped(self, run_id: str, grace: float = STOP_GRACE_S, poll: float = 0.2) -> RunStatus:
        """A run asked to stop, followed to its end: killed once `grace` seconds pass without it."""
        while True:
            status = self.runs.status(run_id)
            if status.state not in LIVE or self.enforce_stop(run_id, grace):
                return self.runs.status(run_id)
            time.sleep(poll)
