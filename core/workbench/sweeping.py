"""Sweeps as a use case: plan a grid of runs from base settings, train them one after another (each a normal
detached run with its own folder, tagged with the sweep), and name the best on dev. `tunelab train --sweep` runs
it; a front end follows each run through a `SweepWatcher`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError
from core.history.store import new_id
from core.training.config import TrainConfig
from core.training.sweeps import MAX_RUNS, Grid, best_run, parse_grid, sweep_configs

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus
    from core.training.runs import Runs
    from core.workbench.compare import ComparePlan
    from core.workbench.run_control import RunControl


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: its id, the grid and one config per grid point, in order."""

    id: str
    grid: Grid
    points: list[dict[str, Any]]
    configs: list[TrainConfig]

    @property
    def size(self) -> int:
        return len(self.configs)


@dataclass
class SweepResult:
    """Each run started (its id, values and final status), and the best on dev: `(run id, metric, value)`."""

    plan: SweepPlan
    ended: list[tuple[str, dict[str, Any], RunStatus]] = field(default_factory=list)
    best: tuple[str, str, float] | None = None


class SweepWatcher:
    """How a front end follows a sweep; called from the thread running it."""

    def started(self, run_id: str, index: int, total: int, values: dict[str, Any]) -> None:
        """Run `index` (from 0) of `total` exists and trains with `values`."""

    def status(self, run_id: str, status: RunStatus) -> None:
        """The current run's status, read about twice a second."""

    def ended(self, run_id: str, status: RunStatus) -> None:
        """The current run left the live states (done, failed, diverged, ...); the next one starts."""


class Sweeps:
    def __init__(self, runs: Runs, control: RunControl, start: Callable[..., str]) -> None:
        self.runs, self.control, self.start = runs, control, start  # start: Workbench.start_run

    def plan(self, base: TrainConfig, grid: str, allow_large: bool = False) -> SweepPlan:
        """Every check before anything runs: the grid's keys and values, its size, each run's settings."""
        parsed = parse_grid(grid)
        if parsed.size > MAX_RUNS and not allow_large:
            raise TunelabError(
                f"{{0}} makes {parsed.size} runs, more than {MAX_RUNS}: give {{1}} to run them", "sweep", "yes"
            )
        return SweepPlan("s" + new_id(), parsed, parsed.points(), sweep_configs(base, parsed))

    def run(self, plan: SweepPlan, watcher: SweepWatcher | None = None, new_prompts: Iterable[Any] = ()) -> SweepResult:
        """Each run in turn, to its end: a run that fails or diverges is one result among the others. Interrupted
        (Ctrl+C in the CLI), the current run goes on and the rest never start."""
        watcher = watcher or SweepWatcher()
        result = SweepResult(plan)
        for index, (config, values) in enumerate(zip(plan.configs, plan.points)):
            record = {"id": plan.id, "index": index + 1, "size": plan.size, "values": values}
            run_id = self.start(config, new_prompts if index == 0 else (), sweep=record)
            watcher.started(run_id, index, plan.size, values)
            status = self.control.wait_ended(run_id, partial(watcher.status, run_id))
            watcher.ended(run_id, status)
            result.ended.append((run_id, values, status))
        result.best = best_run([(run_id, status) for run_id, _, status in result.ended])
        return result

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
