"""watch_folder: a change under the folder calls back soon, without waiting for the heartbeat; stop ends it."""

import threading
import time

from core.storage.watch import watch_folder


def start(folder, heartbeat_s):
    calls: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_folder, args=(folder, stop, lambda: calls.append(time.monotonic()), heartbeat_s)
    )
    thread.start()
    return calls, stop, thread


def wait_until(predicate, guard=30.0):
    deadline = time.monotonic() + guard
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_a_change_calls_back_long_before_the_heartbeat_and_stop_ends_the_watch(tmp_path):
    folder = tmp_path / "runs"  # created by the watch
    calls, stop, thread = start(folder, heartbeat_s=600)
    try:
        assert wait_until(lambda: len(calls) == 1)  # once at the start: nothing before the watch is missed
        time.sleep(0.5)  # let the watch begin
        (folder / "r1").mkdir()
        (folder / "r1" / "metrics.jsonl").write_text('{"step": 1}\n')
        assert wait_until(lambda: len(calls) >= 2)  # a 600 s heartbeat never fires within the guard
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_heartbeat_fires_with_nothing_changing(tmp_path):
    calls, stop, thread = start(tmp_path, heartbeat_s=0.2)
    try:
        assert wait_until(lambda: len(calls) >= 3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_folder_that_cannot_be_watched_falls_back_to_the_heartbeat(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the folder should be: mkdir fails, the heartbeat goes on
    calls, stop, thread = start(blocker / "runs", heartbeat_s=0.1)
    try:
        assert wait_until(lambda: len(calls) >= 3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
