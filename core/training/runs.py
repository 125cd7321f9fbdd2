"""Training runs on disk, and starting, watching and stopping their child processes (stdlib only).

A run folder `<data>/runs/<id>/` holds `run_config.json`, `metrics.jsonl` (appended per step),
`status.json` (replaced atomically), `worker.log` (the child's stdout and stderr), `checkpoints/`
and, when done, `adapter/`. The child runs in its own session, so it outlives the TUI or an SSH
drop; anyone can re-attach by reading the folder.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.seals import remember_seal
from core.engine.cores import usable_cores
from core.errors import TunelabError
from core.history.records import train_record
from core.history.store import History, new_id, now_iso
from core.storage import trackers
from core.storage.atomic import (
    LOG_LIMIT,
    StoreBusy,
    lock_held,
    open_append,
    open_private,
    write_atomic,
    writer_lock,
)
from core.storage.paths import child_env, ensure_private_dir
from core.storage.runfolders import (
    CANCEL_FILE,
    CHECKPOINTS,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    STATUS_FILE,
    STOP_FILE,
    read_json,
    run_folder,
    run_folders,
    write_ledger,
)
from core.training.config import TrainConfig
from core.training.splits import check_data, sealed_config

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus
    from core.training.placement import Slot

LIVE = {"starting", "loading", "running"}


RESERVE_FILE = ".reserve"  # room kept for a run's last word: freed just before its final status is written
RESERVE_BYTES = 256 * 1024


def keep_reserve(run_dir: Path) -> None:
    """Set the reserve aside (a run that starts on a disk too full for it fails here, before its child)."""
    path = run_dir / RESERVE_FILE
    if not path.exists():
        write_atomic(path, "\0" * RESERVE_BYTES)


class StatusWriter:
    """The child's view of status.json: merged updates, each written atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATUS_FILE
        self.status = read_json(self.path) or {}

    def update(self, **fields: Any) -> None:
        self.status.update(fields, updated_at=now_iso())
        write_atomic(self.path, json.dumps(self.status))

    def last_word(self, **fields: Any) -> None:
        """The final status of a run that failed, written even on a disk with no space left: the reserve
        is freed first (and its log may not have been written at all)."""
        (self.path.parent / RESERVE_FILE).unlink(missing_ok=True)
        self.update(**fields)


def metric_row(line: bytes) -> dict[str, Any] | None:
    """One metrics.jsonl line as the monitor can draw it, or None: a torn or foreign line is skipped, a
    loss that is not a finite number (a diverged run's NaN) is kept as a gap, never a crash."""
    from core.storage.schemas import MetricRow, checked

    try:
        row = json.loads(line)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return checked(MetricRow, row)


STEP_FIELDS = (  # (key, label, format): how one metrics row reads, in the monitor and `runs attach`
    ("epoch", "epoch", "{:.2f}"),
    ("loss", "loss", "{:.4f}"),
    ("eval_loss", "eval", "{:.4f}"),
    ("pass_rate", "pass", "{:.0%}"),
    ("lr", "lr", "{:.1e}"),
    ("grad_norm", "gn", "{:.2f}"),
    ("tok_s", "", "{:.0f} tok/s"),
    ("pad_frac", "pad", "{:.0%}"),
    ("eta_s", "eta", "{:.0f}s"),
)


def step_parts(row: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """A metrics row as short `label value` parts; a missing field is left out, a diverged loss reads nan."""
    parts = []
    for key, label, fmt in STEP_FIELDS:
        if key in skip or key not in row:
            continue
        if _finite(row[key]):
            parts.append(f"{label} {fmt.format(row[key])}".strip())
        elif row[key] is None and key in ("loss", "eval_loss"):  # metric_row's mark for a non-finite loss
            parts.append(f"{label} nan")
    return parts


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


TRAINER_LOCK = ".trainer.lock"
RANKS = "ranks"  # one file per torchrun rank: torchrun starts each in a session of its own
_held: list[int] = []  # the lock's descriptor, kept open for the life of the trainer process


def hold_trainer_lock(run_dir: Path) -> bool:
    """Take the run folder's trainer lock for the rest of this process (the OS frees it when the process
    dies, however it dies); False when another trainer holds it. One training process per run folder."""
    fd = open_private(run_dir / TRAINER_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):  # the pid is for people reading the folder; a full disk keeps the lock
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held.append(fd)
    return True


def trainer_running(run_dir: Path) -> bool:
    """Whether a trainer holds the run folder's lock right now (whatever its status.json says)."""
    return lock_held(run_dir / TRAINER_LOCK)


def trainer_gone(run_dir: Path, grace: float = 15.0) -> bool:
    """Whether the trainer lock is free, waiting up to `grace` seconds: a trainer that has written its final
    status is still shutting down (or being reaped) for a moment before the OS frees its lock."""
    deadline = time.monotonic() + grace
    while trainer_running(run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def trim_metrics(run_dir: Path, last_step: int) -> None:
    """Keep only the metric rows up to `last_step` (and no torn line): a resumed run logs the rest again."""
    path = run_dir / METRICS_FILE
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return
    kept = [line for line in lines if (row := metric_row(line)) is not None and row["step"] <= last_step]
    write_atomic(path, b"".join(line + b"\n" for line in kept).decode("utf-8", errors="replace"))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / CHECKPOINTS).glob("step-*")) if (run_dir / CHECKPOINTS).is_dir() else []
    return found[-1] if found else None


def _start_time(pid: int) -> str | None:
    """The process's start time (Linux), so a reused pid is never taken for our run."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def record_rank(run_dir: Path, rank: str) -> None:
    """Note this rank's process (host, pid, start time) so stop and kill reach it even when the torchrun
    agent that started it is gone."""
    folder = ensure_private_dir(run_dir / RANKS)
    entry = {"host": os.uname().nodename, "pid": os.getpid(), "start": _start_time(os.getpid())}
    write_atomic(folder / f"{entry['host']}-{rank}.json", json.dumps(entry))


def rank_pids(run_dir: Path) -> builtins.list[int]:
    """The recorded ranks still running on this host (a reused pid has another start time)."""
    host, pids = os.uname().nodename, []
    for path in sorted((run_dir / RANKS).glob("*.json")):
        entry = read_json(path)
        if isinstance(entry, dict) and entry.get("host") == host and isinstance(entry.get("pid"), int):
            started = _start_time(entry["pid"]) if entry["pid"] > 1 else None
            if started is not None and started == entry.get("start"):
                pids.append(entry["pid"])
    return pids


def alive(status: RunStatus) -> bool:
    pid = status.pid
    if pid is None or pid <= 0:
        return False
    if Path("/proc").is_dir():
        started = _start_time(pid)
        # a start time written as null (the launcher was already gone) matches no process; none written: any
        recorded = status.pid_start if "pid_start" in status.model_fields_set else started
        return started is not None and started == recorded
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def launcher(config: TrainConfig, run_id: str, node_rank: int) -> builtins.list[str]:
    """The command before `-m core.training`: python alone, or torchrun on one node or many."""
    if config.nnodes > 1:
        return [
            sys.executable, "-m", "torch.distributed.run", f"--nnodes={config.nnodes}", f"--node-rank={node_rank}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={config.rdzv_endpoint}", f"--rdzv-id={run_id}",
            f"--nproc-per-node={config.nproc}",
        ]  # fmt: skip
    if config.nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={config.nproc}"]
    return [sys.executable]


def running(run_dir: Path, status: RunStatus) -> bool:
    """The run's launcher is alive, or its trainer still holds the folder (torchrun's ranks outlive a
    killed agent)."""
    return alive(status) or trainer_running(run_dir)


def vanished_why(run_dir: Path) -> str:
    """Why a run whose process is gone said nothing: its log's last line, or, when the log is empty and the
    disk under it is full, that (its log could not be written)."""
    tail = log_tail(run_dir)
    if tail in ("empty log", "no log"):
        try:
            free = shutil.disk_usage(run_dir).free
        except OSError:
            return tail
        if free < RESERVE_BYTES:
            return f"no space left on device under {run_dir} ({tail}: nothing could be written)"
    return tail


def log_tail(run_dir: Path, lines: int = 1) -> str:
    try:
        with open(run_dir / LOG_FILE, encoding="utf-8", errors="replace") as fh:
            tail = [ln.rstrip() for ln in deque(fh, maxlen=50) if ln.strip()]
    except OSError:
        return "no log"
    return " | ".join(tail[-lines:]) if tail else "empty log"


class Runs:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = ensure_private_dir(self.root / "runs")

    def path(self, run_id: str) -> Path:
        return run_folder(self.root, run_id)

    def create(self, config: TrainConfig, sweep: dict[str, Any] | None = None) -> str:
        """A run folder for `config`, after its data is checked: a bad file is refused before anything
        is written, naming the file and line (the child would only find it after loading the model). A sweep's
        run keeps its sweep record (core/training/sweeps.py)."""
        config = sealed_config(self.root, config)
        trackers.ready(config.report_to)  # a missing library is one line before the run exists
        notes, dataset, trained = check_data(config)
        run_id = "t" + new_id()
        run_dir = ensure_private_dir(self.folder / run_id)
        record = {"id": run_id, "created_at": now_iso(), "config": config.to_dict(), "notes": notes}
        if sweep is not None:
            record["sweep"] = sweep
        write_atomic(run_dir / CONFIG_FILE, json.dumps(record, indent=2))
        write_ledger(run_dir, [it.source or it.digest for it in trained])  # a derived row: the row it came from
        remember_seal(self.root, dataset.name, config.holdout, dataset.items)
        keep_reserve(run_dir)
        StatusWriter(run_dir).update(state="created", step=0)
        History(self.root).add(train_record(run_id, config.to_dict(), sweep))
        return run_id

    def launch(self, run_id: str, resume: bool = False, node_rank: int = 0, slot: Slot | None = None) -> int:
        """Start the run's child in its own session; its output goes to worker.log, never a pipe. Under a
        multi-node config this starts node `node_rank`'s torchrun agent; only node 0's owns the status. A sweep
        training runs at once gives each its `slot` (its GPU, or its share of the cores)."""
        run_dir = self.path(run_id)
        config = self.train_config(run_id)
        if node_rank == 0:
            keep_reserve(run_dir)  # a resumed run gets its room back
            for name in (STOP_FILE, CANCEL_FILE):
                (run_dir / name).unlink(missing_ok=True)
            for path in (run_dir / RANKS).glob("*.json"):
                path.unlink()
        env = child_env(**({"CUDA_VISIBLE_DEVICES": slot.devices} if slot and slot.devices is not None else {}))
        env.setdefault("OMP_NUM_THREADS", str(slot.threads if slot else max(1, usable_cores() // config.nproc)))
        fd = open_append(run_dir / (LOG_FILE if node_rank == 0 else f"worker-node{node_rank}.log"), rotate_at=LOG_LIMIT)
        try:
            proc = subprocess.Popen(
                [
                    *launcher(config, run_id, node_rank),
                    "-m",
                    "core.training",
                    str(run_dir),
                    *(["--resume"] if resume else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
        if node_rank == 0:
            StatusWriter(run_dir).update(
                state="starting",
                pid=proc.pid,
                pgid=proc.pid,
                pid_start=_start_time(proc.pid),
                error=None,
                resumed=resume,
            )  # its own session: the group id is its pid; `resumed` tells joining nodes to load the checkpoint
        return proc.pid

    def join(self, endpoint: str, node_rank: int, timeout: float = 600.0, poll: float = 0.5) -> str:
        """Node `node_rank` (>0) of a multi-node run: wait for node 0's run folder with this rendezvous
        endpoint to appear on the shared filesystem, then start this node's torchrun agent for it."""
        deadline = time.monotonic() + timeout
        while True:
            for run_dir in sorted(self._folders(), reverse=True):
                saved = (read_json(run_dir / CONFIG_FILE) or {}).get("config")
                if not isinstance(saved, dict) or saved.get("rdzv_endpoint") != endpoint:
                    continue
                status = self.status(run_dir.name)
                if status.state in LIVE:
                    nnodes = self.train_config(run_dir.name).nnodes  # checked: a damaged config is one line
                    if node_rank >= nnodes:
                        raise TunelabError(f"node rank {node_rank} is outside run {run_dir.name}'s {nnodes} nodes")
                    self.launch(run_dir.name, resume=status.resumed is True, node_rank=node_rank)
                    return run_dir.name
            if time.monotonic() > deadline:
                raise TunelabError(f"no run waits at {endpoint} after {timeout:.0f} s: start node 0 first")
            time.sleep(poll)

    def status(self, run_id: str) -> RunStatus:
        """The status, with a run whose process vanished mid-work shown as failed with its log tail; a diverged
        run's NaN loss reads as None (no figure, rather than one to format)."""
        run_dir = self.path(run_id)
        from core.storage.schemas import RunStatus, parsed

        raw = read_json(run_dir / STATUS_FILE)
        status, why = parsed(RunStatus, raw)
        if status is None:  # an empty folder, or a status.json of another shape: named, never rewritten here
            why = f"of another shape ({why})" if raw is not None else "missing, unreadable or of another shape"
            status = RunStatus(state="unknown", problem=f"{run_dir / STATUS_FILE}: {why}")
        status.id = run_dir.name
        if status.state in LIVE | {"stopping"} and not running(run_dir, status):
            status.state, status.error = "failed", f"process ended unexpectedly: {vanished_why(run_dir)}"
        try:  # when a stop was asked for: the watchdog kills a run that ignores it
            status.stop_requested_at = (run_dir / STOP_FILE).stat().st_mtime
        except OSError:
            status.stop_requested_at = None
        checkpoint = latest_checkpoint(run_dir)
        status.checkpoints = sorted(p.name for p in (run_dir / CHECKPOINTS).glob("step-*")) if checkpoint else []
        return status

    def _launcher(self, run_dir: Path) -> RunStatus:
        """The status as written, for the launcher's pid (one of another shape names none)."""
        from core.storage.schemas import RunStatus, parsed

        return parsed(RunStatus, read_json(run_dir / STATUS_FILE))[0] or RunStatus(state="unknown")

    def _folders(self) -> builtins.list[Path]:
        return run_folders(self.root)

    def list(self) -> builtins.list[RunStatus]:
        return [self.status(p.name) for p in sorted(self._folders(), reverse=True)]

    def config(self, run_id: str) -> dict[str, Any]:
        return read_json(self.path(run_id) / CONFIG_FILE) or {}

    def notes(self, run_id: str) -> builtins.list[str]:
        """What to know about the run's rows (no eval loss, a folded system prompt), as it found them."""
        notes = self.config(run_id).get("notes")
        return [str(n) for n in notes] if isinstance(notes, builtins.list) else []

    def train_config(self, run_id: str) -> TrainConfig:
        """The settings the run was started with; a missing or damaged run_config.json is one line."""
        from core.storage.schemas import RunConfig, checked

        run_dir = self.path(run_id)
        saved = checked(RunConfig, self.config(run_id))
        try:
            if saved is None:
                raise TunelabError("missing")
            return TrainConfig.from_dict(saved["config"])
        except (TunelabError, TypeError, ValueError, KeyError):
            raise TunelabError(f"{run_dir / CONFIG_FILE}: missing or damaged; the run cannot be restarted") from None

    def metrics(self, run_id: str, offset: int = 0) -> tuple[builtins.list[dict[str, Any]], int]:
        """New metric rows since byte `offset` (a torn last line waits for the next call)."""
        path = self.path(run_id) / METRICS_FILE
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        complete = data.rfind(b"\n") + 1
        rows = [row for line in data[:complete].splitlines() if line.strip() and (row := metric_row(line))]
        return rows, offset + complete

    def stop(self, run_id: str) -> None:
        """Stop and save at the next step boundary (STOP file, then SIGTERM to wake it)."""
        run_dir = self.path(run_id)
        (run_dir / STOP_FILE).touch()
        self._signal(run_id, signal.SIGTERM)

    def cancel(self, run_id: str) -> None:
        """Stop without saving; the child removes the run's checkpoints."""
        run_dir = self.path(run_id)
        (run_dir / CANCEL_FILE).touch()
        self._signal(run_id, signal.SIGTERM)

    def kill(self, run_id: str) -> bool:
        """The escalation: SIGKILL the run's whole process group, and mark it stopped by force. A run that
        is no longer running keeps its state (and its adapter): False."""
        if not self._signal(run_id, signal.SIGKILL):
            return False
        StatusWriter(self.path(run_id)).update(state="killed", error="killed after ignoring a stop")
        return True

    def resume(self, run_id: str, config: TrainConfig | None = None) -> int:
        """Continue from the last checkpoint; a changed config is refused, naming what differs. The check
        and the start hold the run's lock, so two resumes at once start one trainer, never two."""
        run_dir = self.path(run_id)
        try:
            with writer_lock(run_dir, timeout=30):
                status = self.status(run_id)
                if status.state in LIVE | {"stopping"} and running(run_dir, status):
                    raise TunelabError(f"run {status.id} is still {status.state}")
                if not trainer_gone(run_dir):
                    raise TunelabError(f"run {status.id} is {status.state} but a trainer still holds it")
                if not status.checkpoints:
                    raise TunelabError(f"run {status.id} has no checkpoint to resume from")
                saved = self.train_config(run_id)
                if config is not None and (diff := saved.differences(config)):
                    raise TunelabError(f"run {status.id} was started with other settings ({'; '.join(diff)})")
                return self.launch(status.id, resume=True)
        except StoreBusy:
            raise TunelabError(f"run {run_dir.name} is being started by another tunelab; try again") from None

    def _signal(self, run_id: str, sig: int) -> bool:
        """Signal the launcher's process group and each torchrun rank's own (they outlive a killed torchrun
        agent); False when nothing of the run is running."""
        run_dir = self.path(run_id)
        status = self._launcher(run_dir)
        if not running(run_dir, status):
            return False
        groups = set(rank_pids(run_dir))  # each rank leads its own group
        # the launcher leads its session's group (runs from before `pgid` was kept: its pid)
        if alive(status) and status.pid is not None:
            groups.add(status.pgid or status.pid)
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        return bool(groups)
