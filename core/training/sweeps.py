"""A sweep: a grid of training settings (`learning_rate=1e-4,3e-4 lora_r=8,16`), one normal run per combination,
each tagged with the sweep's id in its run_config.json (and its history record), and the best of them on dev.

Keys are the declared training options' names (core/training/config.py), each value read by its option's own
`parse` and checked against its bounds, so a bad key or value is one line naming it, before any run starts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError
from core.storage.runfolders import CONFIG_FILE, read_json, run_folders
from core.training.config import TRAIN_OPTIONS, TrainConfig
from core.training.options import Option

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus
    from core.training.runs import Runs

MAX_RUNS = 64  # a larger grid needs the user's explicit yes
LIMIT_RUNS = 4096  # never more, yes or not: each run is a folder and a history record
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
PLACEMENT = ("nproc", "nnodes", "rdzv_endpoint")  # where the runs train: set for the whole sweep
SWEEPABLE = {  # a list or pairs is not one value
    o.name: o for o in TRAIN_OPTIONS if o.kind in (int, float, str, bool) and o.name not in PLACEMENT
}


@dataclass(frozen=True)
class Grid:
    """The values of each swept option, in the order given."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def size(self) -> int:
        return math.prod(len(values) for _, values in self.axes)

    def points(self) -> list[dict[str, Any]]:
        """One dict of settings per run, the last key varying fastest."""
        names = [name for name, _ in self.axes]
        return [dict(zip(names, values)) for values in itertools.product(*(values for _, values in self.axes))]

    def __str__(self) -> str:
        return " x ".join(f"{name} ({len(values)})" for name, values in self.axes)


def parse_grid(text: str) -> Grid:
    """`KEY=V1,V2 KEY=V ...` as a grid; an unknown key, a key given twice or a bad value is one line naming it."""
    axes: dict[str, tuple[Any, ...]] = {}
    for word in text.split():
        key, sep, listed = word.partition("=")
        if not sep or not key or not listed.strip(","):
            raise TunelabError(f"{{0}}: '{word}' is not KEY=VALUE,VALUE", "sweep")
        option = SWEEPABLE.get(key)
        if option is None:
            known = (
                "where the runs train, set for the whole sweep"
                if key in PLACEMENT
                else "a list of names"
                if key in {o.name for o in TRAIN_OPTIONS}
                else "not a training option"
            )
            raise TunelabError(f"{{0}}: '{key}' cannot be swept ({known}; keys: the training options' names)", "sweep")
        if key in axes:
            raise TunelabError(f"{{0}}: '{key}' is given twice", "sweep")
        raws = [raw for raw in listed.split(",") if raw.strip()]
        if len(raws) > LIMIT_RUNS:
            raise TunelabError(f"{{0}}: '{key}' has {len(raws)} values, more than {LIMIT_RUNS}", "sweep")
        axes[key] = tuple(_value(option, raw) for raw in raws)
    if not axes:
        raise TunelabError("{0} needs KEY=VALUE,VALUE (e.g. learning_rate=1e-4,3e-4 lora_r=8,16)", "sweep")
    grid = Grid(tuple(axes.items()))
    if grid.size > LIMIT_RUNS:
        raise TunelabError(f"{{0}} makes {grid.size} runs, more than {LIMIT_RUNS} (the most a sweep may have)", "sweep")
    return grid


def _value(option: Option, raw: str) -> Any:
    """One value as its option reads it (a switch: true/false), refused in one line when out of bounds."""
    if option.kind is bool:
        word = raw.strip().lower()
        if word not in TRUE + FALSE:
            raise TunelabError(f"{{0}}: {option.name} takes true or false, got '{raw}'", "sweep")
        return word in TRUE
    value = option.parse(raw)  # its error names the option
    problem = option.problem(value)
    if problem:
        raise TunelabError(f"{{0}}: {problem}", "sweep")
    return value


def sweep_configs(base: TrainConfig, grid: Grid) -> list[TrainConfig]:
    """The base settings with each grid point's values, every one checked before anything starts; each run is
    one process (the base's `nproc` says how many train at once, core/training/placement.py)."""
    if base.nnodes > 1:
        raise TunelabError("{0} runs on one machine: {1} above 1 is refused", "sweep", "nnodes")
    configs = []
    for point in grid.points():
        try:
            configs.append(replace(base, nproc=1, **point))
        except TunelabError as exc:
            shown = " ".join(f"{k}={v}" for k, v in point.items())
            raise TunelabError(f"{{0}} {shown}: {exc}", "sweep") from None
    return configs


def sweep_of(runs: Runs, run_id: str) -> dict[str, Any] | None:
    """A run's sweep record (`id`, `index`, `size`, `values`), or None for a run of no sweep."""
    sweep = runs.config(run_id).get("sweep")
    return sweep if isinstance(sweep, dict) and isinstance(sweep.get("id"), str) else None


def members(runs: Runs, sweep_id: str) -> list[str]:
    """The runs of a sweep that exist, in grid order."""
    found = []
    for folder in run_folders(runs.root):
        sweep = (read_json(folder / CONFIG_FILE) or {}).get("sweep")
        if isinstance(sweep, dict) and sweep.get("id") == sweep_id:
            found.append((sweep.get("index") if isinstance(sweep.get("index"), int) else 0, folder.name))
    return [name for _, name in sorted(found)]


def grouped(runs: Runs, statuses: Iterable[RunStatus]) -> list[tuple[RunStatus, dict[str, Any] | None]]:
    """Statuses (newest first) with each run's sweep record, a sweep's runs together in grid order, where its
    newest run is."""
    listed = [(status, sweep_of(runs, status.id)) for status in statuses]
    order: dict[str, int] = {}
    for place, (_, sweep) in enumerate(listed):
        if sweep is not None:
            order.setdefault(sweep["id"], place)

    def key(entry: tuple[int, tuple[RunStatus, dict[str, Any] | None]]) -> tuple[int, int]:
        place, (_, sweep) = entry
        if sweep is None:
            return place, 0
        index = sweep.get("index")
        return order[sweep["id"]], index if isinstance(index, int) else 0

    return [entry for _, entry in sorted(enumerate(listed), key=key)]


def best_run(ended: list[tuple[str, RunStatus]]) -> tuple[str, str, float] | None:
    """The best finished run on dev: by its last pass rate when the runs scored one, else by its final eval loss
    (lower); a tie goes to the earlier run. `(run id, metric, value)`, or None when no run recorded either."""
    done = [(run_id, status) for run_id, status in ended if status.state == "done"]
    rates = [(run_id, "pass_rate", status.pass_rate) for run_id, status in done if status.pass_rate is not None]
    if rates:
        return max(rates, key=lambda entry: entry[2])  # the first of equals
    losses = [(run_id, "eval_loss", status.eval_loss) for run_id, status in done if status.eval_loss is not None]
    return min(losses, key=lambda entry: entry[2]) if losses else None
