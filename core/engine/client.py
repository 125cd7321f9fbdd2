"""Talk to the model worker from any process (stdlib only: safe for the TUI).

A reader thread always drains the worker's events and hands each one, typed (`core.engine.protocol`),
to the listener of its request or else to `on_event`. The child's stderr goes to a log file, never to
a pipe. If the worker dies, every open request's listener and `on_event` get `Crashed` with the log's
last line, and the next request starts a fresh worker and reloads the model.

A watchdog names a worker that stops answering: silent (no heartbeat: stopped, swapped out, stuck
holding the GIL) for HANG_S while a request is open, or a request with no event of its own past its
deadline (derived from its size: a stuck library call). It kills that worker, so the open requests end
as crashed with the reason, and the next request starts a fresh one.

The transport is a `Channel`: a child process for real use, or an in-process thread running the same
`Worker` over a scripted host in tests, so both clients share every line of this module.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from core.engine import protocol as p
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.faults import fault_int
from core.storage.atomic import LOG_LIMIT, open_append
from core.storage.paths import child_env

Listener = Callable[[p.Event], None]
HANG_S = 30.0  # silence (no heartbeat), or no event for a request past its deadline, that names a hung worker
STARTUP_S = 60.0  # a fresh worker's first line: Python starting on a loaded machine
PER_TOKEN_S = 0.05  # the slowest decode or prefill a deadline allows per token (a big model on a small CPU)


def per_token_s() -> float:
    """PER_TOKEN_S, or what a test injects (`deadline_per_token_ms`)."""
    injected = fault_int("deadline_per_token_ms")
    return PER_TOKEN_S if injected is None else injected / 1000


def deadline_s(request: p.Request, hang: float = HANG_S) -> float | None:
    """How long a request may go without an event of its own (None: a load, which only the heartbeat
    watches: a download or a big model from disk has no pace to hold it to)."""
    rate = per_token_s()
    if isinstance(request, p.Generate):
        tokens = len(str(request.prompt)) // 3  # chars to tokens, erring long: the prompt's prefill
        return hang + tokens * rate
    if isinstance(request, p.Batch):
        new = int(request.params.get("max_new_tokens") or 256)
        tokens = sum(len(str(x)) // 3 for x in request.prompts[: request.batch_size]) + request.batch_size * new
        return hang + tokens * rate  # one batch: the first item comes when it is done
    if isinstance(request, p.Render):
        return hang + len(str(request.prompt)) // 3 * rate
    return None


class Channel(Protocol):
    """A running worker: lines in, lines out, and an exit code once it ends."""

    def write(self, line: str) -> None: ...
    def lines(self) -> Iterator[str]: ...
    def wait(self) -> int: ...
    def alive(self) -> bool: ...
    def close(self, timeout: float) -> None: ...
    def kill(self) -> None: ...


class ProcessChannel:
    """The worker as a child process (`python -m core.engine.worker`), stderr to `log_path`."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.fdopen(open_append(log_path, rotate_at=LOG_LIMIT), "a", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                encoding="utf-8",
                env=child_env(),
                bufsize=1,
            )
        except OSError as exc:
            raise TunelabError(f"cannot start the model worker ({command[0]}): {exc}") from None
        finally:
            log.close()

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def wait(self) -> int:
        return self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float) -> None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF makes the worker shut down after its current request
                self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class ModelWorkerClient:
    def __init__(
        self,
        on_event: Listener,
        log_path: Path,
        command: list[str] | None = None,
        channel_factory: Callable[[], Channel] | None = None,
        hang_s: float = HANG_S,
    ) -> None:
        self.on_event = on_event
        self.hang_s = float(fault_int("worker_hang_s") or hang_s)
        self.log_path = log_path
        command = command or [sys.executable, "-m", "core.engine.worker"]
        self.channel_factory = channel_factory or (lambda: ProcessChannel(command, log_path))
        self.channel: Channel | None = None
        self.load_request: p.Load | None = None
        self.lock = threading.Lock()
        self.closing = False
        self.ids = itertools.count(1)
        self.listeners: dict[str, Listener] = {}
        self.deadlines: dict[str, tuple[float | None, float]] = {}  # rid -> (next event due once served, allowance)
        self.heard_at = time.monotonic()  # the worker's last line (any: heartbeats included)
        self.hung: str | None = None  # why the watchdog killed the current worker
        self.ready = False  # the model of `load_request` has loaded (a load in flight counts as busy)
        self.heard = False  # the current worker has said something (its heartbeat starts before torch loads)

    @property
    def alive(self) -> bool:
        return self.channel is not None and self.channel.alive()

    def load(self, options: ModelOptions) -> None:
        """Start the worker if needed and (re)load the model; `Loading` then `Ready` or `Error` follow."""
        self.load_request = p.Load(
            options.model, options.allow_pickle, options.trust_remote_code, options.device, options.dtype
        )
        self.ready = False
        self._send(self.load_request)

    def generate(
        self, prompt: dict[str, Any], params: dict[str, Any], listener: Listener, adapter: str | None = None
    ) -> str:
        """Queue one streamed generation; `Started`, `Chunk`s and `Done` (or `Error`) go to `listener`."""
        rid = self._new_id()
        return self._request(rid, p.Generate(rid, prompt, params, adapter), listener)

    def batch(
        self,
        prompts: list[dict[str, Any]],
        params: dict[str, Any],
        listener: Listener,
        batch_size: int = 16,
        adapter: str | None = None,
    ) -> str:
        """Queue a batch; `Item`s then `BatchDone` (or `Error`, `Crashed`) go to `listener`."""
        rid = self._new_id()
        return self._request(rid, p.Batch(rid, prompts, params, adapter, batch_size), listener)

    def render(self, prompt: dict[str, Any], listener: Listener) -> str:
        """Ask for the exact rendered string; `Rendered` (or `Error`) goes to `listener`."""
        rid = self._new_id()
        return self._request(rid, p.Render(rid, prompt), listener)

    def cancel(self, rid: str) -> None:
        if self.alive and rid in self.listeners:
            self._write(p.Cancel(rid))

    def close(self, timeout: float = 3.0) -> None:
        self.closing = True
        if self.channel is not None:
            self.channel.close(timeout)

    def kill(self) -> None:
        """Kill the worker now (tests and crash drills); the reader reports the crash."""
        if self.channel is not None:
            self.channel.kill()

    def _request(self, rid: str, request: p.Request, listener: Listener) -> str:
        self.listeners[rid] = listener
        if (allowance := deadline_s(request, self.hang_s)) is not None:
            self.deadlines[rid] = (None, allowance)  # its clock starts when the worker takes it up
        try:
            self._send(request)
        except TunelabError:
            self.listeners.pop(rid, None)
            raise
        return rid

    def _new_id(self) -> str:
        return f"r{os.getpid()}-{next(self.ids)}"

    def _send(self, request: p.Request) -> None:
        with self.lock:
            if not self.alive:
                self._spawn()
                if request is not self.load_request and self.load_request is not None:
                    self._write(self.load_request)
            self._write(request)

    def _write(self, request: p.Request) -> None:
        try:
            assert self.channel is not None
            self.channel.write(p.to_wire(request))
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader thread reports the crash

    def _spawn(self) -> None:
        self.closing, self.hung, self.ready, self.heard = False, None, False, False
        self.channel = self.channel_factory()
        self.heard_at = time.monotonic()
        threading.Thread(target=self._drain, args=(self.channel,), daemon=True, name="model-worker-reader").start()
        threading.Thread(target=self._watch, args=(self.channel,), daemon=True, name="model-worker-watchdog").start()

    def _watch(self, channel: Channel) -> None:
        """Kill `channel`'s worker once it stops answering (see the module's docstring); ends with it."""
        hang = max(self.hang_s, 4 * p.HEARTBEAT_S)  # never a beat or two late
        while self.channel is channel and channel.alive():
            time.sleep(min(1.0, hang / 4))
            now = time.monotonic()
            busy = bool(self.listeners) or self.load_request is not None and not self.ready
            allowed = hang if self.heard else max(hang, STARTUP_S)  # a first line may take an import or two
            if busy and now - self.heard_at > allowed:
                self._hang(channel, f"has not answered for {now - self.heard_at:.0f} s")
                return
            late = [(rid, allowed) for rid, (due, allowed) in list(self.deadlines.items()) if due and now > due]
            if late:
                self._hang(channel, f"has not answered request {late[0][0]} for {late[0][1]:.0f} s")
                return

    def _hang(self, channel: Channel, why: str) -> None:
        if self.channel is channel and not self.closing:
            self.hung = f"the model worker {why}: stopped it (it restarts on the next request)"
            channel.kill()  # SIGKILL ends a stopped process too; the reader reports the open requests

    def _drain(self, channel: Channel) -> None:
        for line in channel.lines():
            self.heard_at, self.heard = time.monotonic(), True
            try:
                event = p.from_wire(line, p.EVENTS)
            except p.ProtocolError:
                continue
            if isinstance(event, p.Alive):
                if event.busy in self.deadlines and self.deadlines[event.busy][0] is None:
                    self._due(event.busy)
                continue
            if isinstance(event, p.Ready):
                self.ready = True
            rid = getattr(event, "id", None)
            if rid in self.deadlines:
                if isinstance(event, p.FINAL):
                    self.deadlines.pop(rid, None)
                else:
                    self._due(rid)
            listener = self.listeners.get(rid) if rid else None
            if listener is None:
                self.on_event(event)
                continue
            if isinstance(event, p.FINAL):
                self.listeners.pop(rid, None)  # type: ignore[arg-type]
            listener(event)
        code = channel.wait()
        self.deadlines.clear()
        if not self.closing:
            crashed = p.Crashed(self.hung or f"model worker exited (code {code}): {self._log_tail()}")
            for rid in list(self.listeners):
                self.listeners.pop(rid)(crashed)
            self.on_event(crashed)

    def _due(self, rid: str) -> None:
        """`rid`'s next event is due its allowance from now."""
        if (entry := self.deadlines.get(rid)) is not None:
            self.deadlines[rid] = (time.monotonic() + entry[1], entry[1])

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in deque(fh, maxlen=20) if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][:200] if lines else "no output in log"
