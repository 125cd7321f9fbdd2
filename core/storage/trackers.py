"""Experiment trackers a training run or an eval reports to (`--report-to`), both on this machine: TensorBoard
event files, or trackio's local store. One interface (`Tracker`), one class per tracker, found by name in
`TRACKERS`. Each library is an optional extra, imported only when a tracker opens: a missing one is one line
naming the extra, said before a run starts or an eval runs."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from core.errors import TunelabError
from core.storage.paths import ensure_private_dir

PROJECT = "tunelab"  # trackio's project: every run and eval reports into it, named by its id
TENSORBOARD = "tensorboard"  # the event files' folder inside a run's or an eval's own folder
REMOTE = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")  # what would send trackio's logs off this machine


class Tracker(ABC):
    """One run (a training run or an eval, by its id) in a tracker: scalars by step, tables, its config."""

    module: ClassVar[str]  # the library it needs, which the extra of the same name installs
    shown: str  # what the front ends say: where the report is and how to open it

    @abstractmethod
    def __init__(self, name: str, config: dict[str, Any], folder: Path) -> None:
        """Open the run `name`, its config logged once; `folder` is where a tracker that writes files writes."""

    @abstractmethod
    def scalars(self, values: dict[str, float], step: int) -> None: ...

    @abstractmethod
    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @classmethod
    def ready(cls) -> None:
        """Refuse, in one line, what else would fail once the tracker opens (its library is checked first)."""
        return None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoard(Tracker):
    """Event files in `folder`, written with TensorBoard's own writer (no TensorFlow, no torch): scalars as
    TensorBoard reads them, a table and the config as Markdown on its Text tab."""

    module = "tensorboard"

    def __init__(self, name: str, config: dict[str, Any], folder: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(ensure_private_dir(folder)))  # a link planted there is refused
        self.shown = f"TensorBoard event files in {folder} (tensorboard --logdir {folder})"
        self.table("config", ("setting", "value"), sorted(config.items()), 0)

    def scalars(self, values: dict[str, float], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._event(step, Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]))

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        lines = [_row(columns), "|" + "---|" * len(columns), *(_row(row) for row in rows)]
        self._event(step, text_pb(tag, "\n".join(lines)))

    def _event(self, step: int, summary: Any) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def close(self) -> None:
        self.writer.close()  # flushes, and ends its writing thread


def _row(cells: Sequence[Any]) -> str:
    """A Markdown table row: a cell's pipes escaped, its lines joined, dicts and lists as JSON."""
    text = [json.dumps(c) if isinstance(c, (dict, list)) else "" if c is None else str(c) for c in cells]
    return "| " + " | ".join(" ".join(t.split()).replace("|", "\\|") for t in text) + " |"


class Trackio(Tracker):
    """A run of trackio's local store (`TRACKIO_DIR`, else under HF_HOME): its SQLite file, no server and no
    Space. A trainer that resumes continues its run by name. trackio's own chatter is kept off stdout (which
    `--json` holds); `shown` says how to open the dashboard."""

    module = "trackio"

    def __init__(self, name: str, config: dict[str, Any], folder: Path) -> None:
        import trackio

        self.trackio = trackio
        with contextlib.redirect_stdout(io.StringIO()):
            self.run = trackio.init(
                project=PROJECT,
                name=name,
                config=config,
                resume="allow",
                embed=False,
                auto_log_cpu=False,  # no sampling threads beside the run
                auto_log_gpu=False,
            )
        self.shown = f"trackio project {PROJECT}, run {name} (trackio show --project {PROJECT})"

    @classmethod
    def ready(cls) -> None:
        remote = [name for name in REMOTE if os.environ.get(name)]
        if remote:
            raise TunelabError(
                f"{{0}} trackio: tunelab logs to trackio's local store only; unset {' and '.join(remote)}", "report_to"
            )

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def table(self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        self.run.log({tag: self.trackio.Table(columns=list(columns), data=[list(r) for r in rows])}, step=step)

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.trackio.finish()  # waits for its writing thread to store every row; none left for its atexit


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoard, "trackio": Trackio}
NAMES = tuple(TRACKERS)


def check(report_to: str | None, report_dir: str | None) -> None:
    """The settings alone (nothing imported): a tracker known by name, and a folder only where it takes one."""
    if report_to is not None and report_to not in TRACKERS:
        raise TunelabError(f"unknown tracker '{report_to}' for {{0}} (known: {', '.join(NAMES)})", "report_to")
    if report_dir and report_to != "tensorboard":
        raise TunelabError(
            "{0} is TensorBoard's folder: it needs {1} tensorboard (trackio keeps its store in TRACKIO_DIR)",
            "report_dir",
            "report_to",
        )


def ready(report_to: str | None) -> None:
    """Refuse, before anything runs, a tracker whose library is not installed (naming the extra) or that
    could not report here."""
    if report_to is None:
        return
    check(report_to, None)
    tracker = TRACKERS[report_to]
    if importlib.util.find_spec(tracker.module) is None:
        raise TunelabError(
            f"{{0}} {report_to} needs the {tracker.module} library: pip install 'tunelab[{report_to}]'", "report_to"
        )
    tracker.ready()


def folder(own: Path, name: str, report_dir: str | None) -> Path:
    """Where TensorBoard's event files go: DIR/NAME under --report-dir, else `own` folder's `tensorboard`."""
    return Path(report_dir).expanduser() / name if report_dir else own / TENSORBOARD


def open_tracker(report_to: str, name: str, config: dict[str, Any], where: Path) -> Tracker:
    """The tracker `report_to` for the run or eval `name` (its config logged once); `where` is TensorBoard's."""
    ready(report_to)
    return TRACKERS[report_to](name, config, where)
