"""The long-lived model worker: serves a `ModelHost` over the typed protocol (`core.engine.protocol`).

Requests arrive as JSON lines on stdin; events leave on the original stdout. Anything a library prints
goes to stderr (a log file), so it can never corrupt the protocol. A reader thread handles `cancel`
at once (also for a request still queued), while requests run one at a time on the serving thread.
The same `Worker` runs in-process over queues for the TUI tests (`tests.fakes`), with a scripted host.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from core.engine import protocol as p
from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.errors import TunelabError


class Host(Protocol):
    """What the worker serves: `core.engine.host.ModelHost`, or a scripted stand-in in tests."""

    def load(self, options: ModelOptions) -> p.ModelInfo: ...
    def render(self, prompt: Prompt) -> tuple[str, int, str]: ...
    def generate(
        self,
        prompt: Prompt,
        params: GenParams,
        adapter: str | None,
        *,
        emit: Any,
        cancel: threading.Event,
        on_rendered: Any = None,
    ) -> dict[str, Any]: ...
    def batch(
        self,
        prompts: list[Prompt],
        params: GenParams,
        adapter: str | None,
        *,
        on_result: Any,
        cancel: threading.Event,
        batch_size: int = 16,
    ) -> None: ...


class Worker:
    def __init__(self, host: Host | None, out: TextIO) -> None:
        self.host = host
        self.out = out
        self.out_lock = threading.Lock()
        self.requests: queue.Queue[p.Request | None] = queue.Queue()
        self.cancels: dict[str, threading.Event] = {}
        self.stopped = threading.Event()  # serving ended: the heartbeat ends with it
        self.beating = False
        self.current: str | None = None  # the request being served

    def send(self, event: p.Event) -> None:
        with self.out_lock:
            self.out.write(p.to_wire(event) + "\n")
            self.out.flush()

    def read_requests(self, stream: Iterable[str]) -> None:
        for line in stream:
            try:
                req = p.from_wire(line, p.REQUESTS)
            except p.ProtocolError as exc:
                self.send(p.Error(str(exc)))
                continue
            if isinstance(req, p.Cancel):
                if (event := self.cancels.get(req.id)) is not None:
                    event.set()  # a cancel for a finished request is simply dropped
                continue
            if isinstance(req, (p.Generate, p.Batch)):
                self.cancels.setdefault(req.id, threading.Event())
            self.requests.put(req)
        self.requests.put(None)  # the parent went away: shut down

    def heartbeat(self) -> None:
        """An `Alive` now and every HEARTBEAT_S until serving ends (started before the heavy imports)."""
        while True:
            try:
                self.send(p.Alive(self.current))
            except (OSError, ValueError):  # the parent went away
                return
            if self.stopped.wait(p.HEARTBEAT_S):
                return

    def start_heartbeat(self) -> None:
        if not self.beating:
            self.beating = True
            threading.Thread(target=self.heartbeat, daemon=True, name="worker-heartbeat").start()

    def serve(self) -> None:
        try:
            self._serve()
        finally:
            self.stopped.set()

    def _serve(self) -> None:
        while (req := self.requests.get()) is not None:
            rid = getattr(req, "id", None)
            self.current = rid
            try:
                self.handle(req)
            except TunelabError as exc:
                self.send(p.Error(str(exc), rid, req.TAG))
            except Exception as exc:  # keep serving; the log has the traceback
                traceback.print_exc()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self.send(p.Error(f"{type(exc).__name__}: {first}", rid, req.TAG))
            finally:
                self.current = None
                if rid is not None:
                    self.cancels.pop(rid, None)

    def handle(self, req: p.Request) -> None:
        host = self.host
        if host is None:  # `run` sets it before serving; a request cannot arrive earlier
            raise TunelabError("the model worker is still starting")
        if isinstance(req, p.Load):
            self.send(p.Loading(req.model))
            options = ModelOptions(req.model, None, req.allow_pickle, req.trust_remote_code, req.dtype, req.device)
            self.send(p.Ready(host.load(options)))
        elif isinstance(req, p.Render):
            self.send(p.Rendered(req.id, *host.render(Prompt.from_dict(req.prompt))))
        elif isinstance(req, p.Generate):
            rid = req.id
            result = host.generate(
                Prompt.from_dict(req.prompt),
                GenParams.from_dict(req.params),
                req.adapter,
                emit=lambda text, tokens: self.send(p.Chunk(rid, text, tokens)),
                cancel=self.cancels[rid],
                on_rendered=lambda rendered, n: self.send(p.Started(rid, rendered, n)),
            )
            self.send(p.Done(rid, p.GenResult.of(result)))
        elif isinstance(req, p.Batch):
            rid, cancel = req.id, self.cancels[req.id]
            host.batch(
                [Prompt.from_dict(x) for x in req.prompts],
                GenParams.from_dict(req.params),
                req.adapter,
                on_result=lambda i, r: self.send(p.Item(rid, i, p.GenResult.of(r))),
                cancel=cancel,
                batch_size=req.batch_size,
            )
            self.send(p.BatchDone(rid, cancel.is_set()))
        else:
            raise TunelabError(f"unknown request {req!r}")


def run(host: Host, requests: Iterable[str], out: TextIO, worker: Worker | None = None) -> None:
    """Serve until `requests` ends, with a heartbeat beside (a stopped or stuck process goes silent);
    `worker`: one made (and beating) before the host's imports."""
    worker = worker or Worker(host, out)
    worker.host = host
    worker.start_heartbeat()
    threading.Thread(target=worker.read_requests, args=(requests,), daemon=True, name="worker-requests").start()
    worker.serve()


def main() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints land in the log
    worker = Worker(None, protocol)
    worker.start_heartbeat()  # alive from the first moment: importing torch takes seconds
    import torch

    from core.storage.paths import private_files

    private_files()
    from core.engine.host import ModelHost

    torch.set_num_threads(int(os.environ.get("TUNELAB_TORCH_THREADS", "1")))  # batch-1 decode is fastest on one
    run(ModelHost(), sys.stdin, protocol, worker)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
