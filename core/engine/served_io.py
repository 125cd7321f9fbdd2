"""How the served client reads an answer, bounded: every body under a byte cap (read as it streams, never
whole first), each streamed line under its own cap, and the whole call under one deadline that a read
waiting on a silent or trickling server does not outlast (at the deadline the connection is shut).

Readers raise `Broken` (why, in words) past a cap or on a torn stream, and `Late` once the deadline has
passed; the client turns either into its one line.
"""

from __future__ import annotations

import heapq
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

MAX_ANSWER_BYTES = 8 * 2**20  # a whole body, or a whole stream
MAX_LINE_BYTES = 2**20  # one line of a stream (an event is one line: a token or a few)
ERROR_BODY_BYTES = 64 * 2**10  # what an error's detail (or a refused field) is read from
DONE: dict[str, Any] = {}  # `[DONE]`: the stream's end, told apart from a connection that just closes


class Broken(Exception):
    """A body past a cap, or a stream torn mid-way: `str()` says which, in words."""


class Late(Exception):
    """The call's deadline passed while its answer was being read."""


def mib(size: int) -> str:
    return f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size // 1024} KiB"


class Deadline:
    """One call's deadline, from its start: what is left of it, and a watch over each response."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False  # the watch shut a connection at the deadline
        self.lock = threading.Lock()

    def left(self) -> float:
        return self.at - time.monotonic()

    def over(self) -> bool:
        return self.passed or self.left() <= 0.01  # (a read timed out at what was left: the deadline)

    def check(self) -> None:
        if self.over():
            raise Late()

    @contextmanager
    def watch(self, response: Any) -> Iterator[None]:
        """While `response` is read: at the deadline its connection is shut, so a read waiting on a server
        that is silent, or trickles a byte now and then, returns at once (and the client says why)."""
        done = [False]

        def cut() -> None:
            with self.lock:
                if done[0]:
                    return
                self.passed = True
                stream = getattr(response, "extensions", {}).get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        entry = WATCHER.add(self.at, cut)
        try:
            yield
        finally:
            with self.lock:
                done[0] = True
            entry[2] = None  # never cut now


class Watcher:
    """One thread keeps every call's deadline (not a timer thread a call): a heap of (when, n, cut), a cut
    dropped once its call ends is skipped when its time comes."""

    def __init__(self) -> None:
        self.ready = threading.Condition()
        self.heap: list[list[Any]] = []
        self.count = itertools.count()
        self.thread: threading.Thread | None = None

    def add(self, at: float, cut: Callable[[], None]) -> list[Any]:
        entry = [at, next(self.count), cut]
        with self.ready:
            heapq.heappush(self.heap, entry)
            if self.thread is None or not self.thread.is_alive():  # (a forked child has none)
                self.thread = threading.Thread(target=self._run, daemon=True, name="served-deadlines")
                self.thread.start()
            self.ready.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self.ready:
                while self.heap and self.heap[0][2] is None:
                    heapq.heappop(self.heap)
                wait = self.heap[0][0] - time.monotonic() if self.heap else None
                if wait is None or wait > 0:
                    self.ready.wait(wait)
                    continue
                cut = heapq.heappop(self.heap)[2]
            if cut is not None:
                cut()


WATCHER = Watcher()


def read_capped(response: Any, cap: int, deadline: Deadline, strict: bool = True) -> str:
    """The body, read as it streams: past `cap` bytes `Broken` (strict) or cut there (an error's detail)."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        deadline.check()
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            if strict:
                raise Broken(f"the answer is over {mib(cap)} (the cap on an answer): stopped reading it")
            break
    return b"".join(chunks)[:cap].decode("utf-8", errors="replace")


def error_text(response: Any, deadline: Deadline) -> str:
    """An error answer's words (its first ERROR_BODY_BYTES), read once however often they are asked for."""
    said = getattr(response, "tunelab_said", None)
    if said is None:
        said = response.tunelab_said = read_capped(response, ERROR_BODY_BYTES, deadline, strict=False)
    return str(said)


def capped_lines(response: Any, deadline: Deadline) -> Iterator[str]:
    """The body's lines as they stream: each at most MAX_LINE_BYTES, all at most MAX_ANSWER_BYTES."""
    buffer, size = b"", 0
    for chunk in response.iter_bytes():
        deadline.check()
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise Broken(f"the stream passed {mib(MAX_ANSWER_BYTES)} (the cap on an answer): stopped reading it")
        buffer += chunk
        end = max(buffer.rfind(b"\n"), buffer.rfind(b"\r"))
        if end >= 0:
            done, buffer = buffer[: end + 1], buffer[end + 1 :]
            yield from (line.decode("utf-8", errors="replace") for line in done.splitlines())
        if len(buffer) > MAX_LINE_BYTES:
            raise Broken(f"a streamed line passed {mib(MAX_LINE_BYTES)} (the cap on a line): stopped reading it")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


def events(lines: Iterator[str], deadline: Deadline) -> Iterator[dict[str, Any]]:
    """Server-sent events: each `data:` line's JSON object, then DONE at `[DONE]`. Comments (keep-alives)
    and empty events are skipped, and never extend the deadline. A `data:` line that is not JSON: Broken."""
    for line in lines:
        deadline.check()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            yield DONE
            return
        try:
            data = json.loads(payload)
        except ValueError:
            raise Broken("the stream was torn: an event that is not JSON") from None
        if isinstance(data, dict):
            yield data


def retry_after(header: str | None, attempt: int, cap: float) -> float:
    """The server's Retry-After (seconds), else an exponential backoff; capped either way."""
    try:
        return min(cap, max(0.0, float(header))) if header else min(8.0, 0.5 * 2**attempt)
    except ValueError:
        return min(8.0, 0.5 * 2**attempt)


def transport(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is the server running?)"
    return " ".join(text.split())[:160]
