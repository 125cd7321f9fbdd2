"""Sweeps as a use case: plan a grid of runs from base settings, train them one after another or several at once
(each a normal detached run with its own folder, tagged with the sweep, in its own slot: a GPU or a share of the
cores), name the best on dev, and stop a whole sweep from anywhere. `tunelab train --sweep` runs it; a front end
follows the runs through a `SweepWatcher`."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError
from core.history.store import new_id, now_iso
from core.storage.atomic import write_atomic
from core.storage.paths import ensure_private_dir
from core.training.config import TrainConfig
from core.training.placement import Slot, slots
from core.training.runs import LIVE
from core.training.sweeps import MAX_RUNS, Grid, best_run, members, parse_grid, sweep_configs, sweep_of

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus
    from core.training.runs import Runs
    from core.workbench.compare import ComparePlan
    from core.workbench.run_control import RunControl

SWEEP_ID = re.compile(r"s[0-9a-z]{4,40}")  # "s" + a history id: a stop marker's name, never a path


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: its id, the grid, one config per grid point in order, and the slots its runs train in
    (one: one run after another; several: that many at once, core/training/placement.py)."""

    id: str
    grid: Grid
    points: list[dict[str, Any]]
    configs: list[TrainConfig]
    slots: list[Slot]

    @property
    def size(self) -> int:
        return len(self.configs)

    @property
    def pace(self) -> str:
        """How the runs go, in words: `one after another`, `2 at once (GPU 0, GPU 1)` or `2 at once on the CPU
        (4 threads each)`."""
        count, threads = len(self.slots), self.slots[0].threads
        if count == 1:
            return "one after another"
        if not any(slot.devices for slot in self.slots):
            return f"{count} at once on the CPU ({threads} thread{'s' if threads > 1 else ''} each)"
        return f"{count} at once ({', '.join(map(str, self.slots))})"


@dataclass
class SweepResult:
    """Each run started (its id, values and final status, in grid order), the best on dev as `(run id, metric,
    value)`, and whether the sweep was stopped (the runs not started then never were)."""

    plan: SweepPlan
    ended: list[tuple[str, dict[str, Any], RunStatus]] = field(default_factory=list)
    best: tuple[str, str, float] | None = None
    stopped: bool = False


class SweepWatcher:
    """How a front end follows a sweep; called from the thread running it. Several runs may be live at once."""

    def started(self, run_id: str, index: int, total: int, values: dict[str, Any]) -> None:
        """Run `index` (from 0) of `total` exists and trains with `values`."""

    def status(self, run_id: str, status: RunStatus) -> None:
        """A live run's status, read about twice a second."""

    def ended(self, run_id: str, status: RunStatus) -> None:
        """The run left the live states (done, failed, diverged, ...); its slot takes the next one."""


class Sweeps:
    def __init__(self, runs: Runs, control: RunControl, start: Callable[..., str]) -> None:
        self.runs, self.control, self.start = runs, control, start  # start: Workbench.start_run

    def plan(self, base: TrainConfig, grid: str, allow_large: bool = False) -> SweepPlan:
        """Every check before anything runs: the grid's keys and values, its size, each run's settings, and
        where the base's `nproc` runs at once train (more than the GPUs visible is refused)."""
        parsed = parse_grid(grid)
        if parsed.size > MAX_RUNS and not allow_large:
            raise TunelabError(
                f"{{0}} makes {parsed.size} runs, more than {MAX_RUNS}: give {{1}} to run them", "sweep", "yes"
            )
        configs = sweep_configs(base, parsed)
        places = slots(base.device, min(base.nproc, parsed.size))
        return SweepPlan("s" + new_id(), parsed, parsed.points(), configs, places)

    def run(
        self, plan: SweepPlan, watcher: SweepWatcher | None = None, new_prompts: Iterable[Any] = (), poll: float = 0.5
    ) -> SweepResult:
        """The runs in grid order, as many at once as the plan has slots, each to its end: a run that fails or
        diverges is one result among the others. Interrupted (Ctrl+C in the CLI, or a watcher raising), the
        live runs go on and the rest never start; stopped (`stop`, from any process), no more start and the live
        runs stop and save (one started as the stop came is asked too; one ignoring it is killed after the
        grace, as the monitor's watchdog does)."""
        watcher = watcher or SweepWatcher()
        pending = deque(enumerate(zip(plan.configs, plan.points)))
        free, live = list(plan.slots), dict[str, tuple[int, dict[str, Any], Slot]]()
        ended: dict[int, tuple[str, dict[str, Any], RunStatus]] = {}
        asked: set[str] = set()  # live runs this loop asked to stop
        while pending or live:
            while pending and free and not self.stopping(plan.id):
                index, (config, values) = pending.popleft()
                slot = free.pop(0)
                run_id = self._start(plan, index, config, values, slot, new_prompts if index == 0 else (), live)
                live[run_id] = (index, values, slot)
                watcher.started(run_id, index, plan.size, values)
            if self.stopping(plan.id):
                pending.clear()
                for run_id in live.keys() - asked:
                    self.control.stop_run(run_id)
                    asked.add(run_id)
            for run_id in list(live):
                status = self.runs.status(run_id)
                watcher.status(run_id, status)
                if status.state in LIVE:
                    self.control.enforce_stop(run_id, status=status)
                    continue
                index, values, slot = live.pop(run_id)
                free.insert(0, slot)
                watcher.ended(run_id, status)
                ended[index] = (run_id, values, status)
            if live:
                time.sleep(poll)
        result = SweepResult(plan, [ended[index] for index in sorted(ended)], stopped=self.stopping(plan.id))
        result.best = best_run([(run_id, status) for run_id, _, status in result.ended])
        return result

    def _start(
        self, plan: SweepPlan, index: int, config: TrainConfig, values: dict[str, Any], slot: Slot,
        prompts: Iterable[Any], live: dict[str, Any],
    ) -> str:  # fmt: skip
        """Run `index` of the grid started in `slot`; a start that fails is one line naming the runs still live."""
        record = {"id": plan.id, "index": index + 1, "size": plan.size, "values": values}
        if len(plan.slots) > 1:
            record["on"] = str(slot)
        try:
            return self.start(config, prompts, sweep=record, slot=slot)
        except (OSError, TunelabError) as exc:
            going = f"; {', '.join(live)} go on (stopping the sweep stops them)" if live else ""
            raise TunelabError(
                f"sweep {plan.id}: run {index + 1} of {plan.size} could not start: {exc}{going}"
            ) from None

    def stop(self, run_id: str) -> tuple[str, list[str]]:
        """Stop the whole sweep `run_id` belongs to, from any process: no run of it starts after this, and its live
        runs stop and save (each as the monitor's stop does). The sweep's id and the runs asked to stop."""
        sweep = sweep_of(self.runs, run_id)
        if sweep is None:
            raise TunelabError(f"run {run_id} is no sweep's: stop it alone")
        sweep_id = sweep["id"]
        marker = self._marker(sweep_id)
        ensure_private_dir(marker.parent)
        write_atomic(marker, now_iso())
        asked = []
        for member in members(self.runs, sweep_id):
            if self.runs.status(member).state in LIVE:
                self.control.stop_run(member)
                asked.append(member)
        return sweep_id, asked

    def stopping(self, sweep_id: str) -> bool:
        return self._marker(sweep_id).exists()

    def _marker(self, sweep_id: str) -> Path:
        if not SWEEP_ID.fullmatch(sweep_id):
            raise TunelabError(f"'{sweep_id}' is not a sweep id")
        return self.runs.root / "sweeps" / f"{sweep_id}.stop"

    def swept(
        self, plan: ComparePlan, grid: str, watcher: SweepWatcher | None = None, allow_large: bool = False
    ) -> tuple[ComparePlan, SweepResult]:
        """`compare --sweep`: the grid over the comparison's LoRA as is (its first training), and the plan with
        the sweep's best on dev as that LoRA: judging it counts every run of the sweep as a LoRA tried."""
        if not plan.train or plan.train[0].template:
            raise TunelabError("{0} sweeps the LoRA trained as is: give {1} too", "sweep", "train")
        result = self.run(self.plan(plan.train[0], grid, allow_large), watcher)
        if result.best is None:
            raise TunelabError(f"sweep {result.plan.id}: no run finished with an eval loss or pass rate to pick from")
        return replace(plan, train=plan.train[1:], adapters=[*plan.adapters, result.best[0]]), result
