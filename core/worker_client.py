"""Talk to the model worker child process from any process (stdlib only: safe for the TUI).

A reader thread always drains the child's stdout and hands each event to `on_event`; the child's
stderr goes to a log file, never to a pipe. If the child dies, `on_event` gets a `crashed` event
with the log's last line, and the next request starts a fresh child and reloads the model.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from core.errors import TunelabError

Event = dict[str, Any]


class ModelWorkerClient:
    def __init__(self, on_event: Callable[[Event], None], log_path: Path,
                 command: list[str] | None = None) -> None:
        self.on_event = on_event
        self.log_path = log_path
        self.command = command or [sys.executable, "-m", "core.model_worker"]
        self.proc: subprocess.Popen[str] | None = None
        self.load_request: Event | None = None
        self.lock = threading.Lock()
        self.closing = False
        self.ids = itertools.count(1)
        self.listeners: dict[str, Callable[[Event], None]] = {}

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def load(self, model: str, **options: Any) -> None:
        """Start the child if needed and (re)load `model`; `ready` or `error` follows as an event."""
        self.load_request = {"op": "load", "model": model, **options}
        self._send(self.load_request)

    def generate(self, prompt: str, params: dict[str, Any], *, system: str = "", mode: str = "auto",
                 adapter: str | None = None) -> str:
        """Queue one generation (with `adapter`, a PEFT folder, active); returns its request id.
        Restarts a dead worker first."""
        rid = self._new_id()
        self._send({"op": "generate", "id": rid, "params": params, "adapter": adapter,
                    "prompt": {"text": prompt, "system": system, "mode": mode}})
        return rid

    def batch(self, prompts: list[dict[str, Any]], params: dict[str, Any],
              listener: Callable[[Event], None], batch_size: int = 16, adapter: str | None = None) -> str:
        """Queue a batch; its events (`item`, `batch_done`, `error`, `crashed`) go to `listener`."""
        return self._request({"op": "batch", "prompts": prompts, "params": params, "batch_size": batch_size,
                              "adapter": adapter}, listener)

    def render(self, prompt: dict[str, Any], listener: Callable[[Event], None]) -> str:
        """Ask for the exact rendered string; `rendered` (or `error`) goes to `listener`."""
        return self._request({"op": "render", "prompt": prompt}, listener)

    def _request(self, request: Event, listener: Callable[[Event], None]) -> str:
        rid = self._new_id()
        self.listeners[rid] = listener
        self._send({**request, "id": rid})
        return rid

    def _new_id(self) -> str:
        return f"r{os.getpid()}-{next(self.ids)}"

    def cancel(self, rid: str) -> None:
        if self.alive:
            self._write({"op": "cancel", "id": rid})

    def close(self, timeout: float = 3.0) -> None:
        self.closing = True
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.stdin.close()  # EOF makes the child shut down after its current request
                proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _send(self, request: Event) -> None:
        with self.lock:
            if not self.alive:
                self._spawn()
                if request is not self.load_request and self.load_request is not None:
                    self._write(self.load_request)
            self._write(request)

    def _write(self, request: Event) -> None:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader thread reports the crash

    def _spawn(self) -> None:
        self.closing = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, text=True, encoding="utf-8", env=env, bufsize=1)
        except OSError as exc:
            raise TunelabError(f"cannot start the model worker ({self.command[0]}): {exc}") from None
        finally:
            log.close()
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True, name="model-worker-reader").start()

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            listener = self.listeners.get(event.get("id", ""))
            if listener is None:
                self.on_event(event)
                continue
            if event["event"] in {"batch_done", "rendered", "error"}:
                self.listeners.pop(event["id"], None)
            listener(event)
        code = proc.wait()
        if not self.closing:
            crashed = {"event": "crashed", "message": f"model worker exited (code {code}): {self._log_tail()}"}
            for rid in list(self.listeners):
                self.listeners.pop(rid)(crashed)
            self.on_event(crashed)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in deque(fh, maxlen=20) if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][:200] if lines else "no output in log"
