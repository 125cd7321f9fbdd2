"""Waiting for files to change without polling them: inotify (or the OS's equivalent) through watchfiles.

Run folders and user themes change when another process writes them; a reader that re-reads on a timer
either lags or burns CPU. `watch_folder` calls back after each burst of changes, plus a slow heartbeat
for what no file announces (a process that died, a deadline that passed). Where the OS cannot watch
(no inotify slots, a network file system), it falls back to the heartbeat alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


def watch_folder(folder: Path, stop: threading.Event, on_change: Callable[[], object], heartbeat_s: float) -> None:
    """Call `on_change` once now, after each burst of changes under `folder`, and every `heartbeat_s`
    when nothing changed, until `stop` is set. Blocks: run it in a thread."""
    on_change()  # what changed before the watch began is never missed
    try:
        import watchfiles

        folder.mkdir(parents=True, exist_ok=True)
        for _changes in watchfiles.watch(
            folder,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=int(heartbeat_s * 1000),
            debounce=150,
            step=50,
            raise_interrupt=False,
        ):
            on_change()
    except (OSError, RuntimeError):  # cannot watch here (or the folder went away): check on the heartbeat
        while not stop.wait(heartbeat_s):
            on_change()
