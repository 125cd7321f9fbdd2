"""The one generation on screen: sent off the UI loop, followed through the worker's typed events,
saved to history however it ends. The main screen's handlers call it; the results pane shows it."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError
from tui.messages import WorkbenchFailed, WorkerError, worker_message

SERVED = "served-"  # the request id of a run on the model's own engine (no worker request)
CHUNK_S = 0.05  # a served stream reaches the screen at most this often (never a message per token)

if TYPE_CHECKING:
    from core.data.prompts import PromptVersion
    from core.engine.prompt import Prompt
    from core.evals.plan import EvalRequest
    from core.workbench.service import PromptRef
    from tui.screens.main import MainScreen


@dataclass
class Generation:
    """A run being generated: what was asked, what the worker calls it, and what streamed so far."""

    token: str  # the screen's name for it (g1, g2, ...), on every event that answers it
    model: str
    ref: PromptRef
    adapter: str | None
    rid: str | None = None  # the worker's request id, once sent
    cancel: bool = False  # esc came before the request id: cancelled as soon as it is known
    prompt: Prompt | None = None  # the filled template, once sent
    streamed: list[str] = field(default_factory=list)
    rendered_prompt: str = ""
    started_at: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)  # a served model's cancel

    @property
    def in_worker(self) -> bool:
        """Sent to the model worker (a served model's request is this process's own)."""
        return bool(self.rid) and not str(self.rid).startswith(SERVED)


class Generations:
    """Starts, follows and finishes generations for `screen` (one at a time)."""

    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen
        self.current: Generation | None = None
        self.sender: threading.Thread | None = None  # the send in flight (the app's `settled` waits for it)
        self.tokens = itertools.count(1)

    def start(self, ref: PromptRef, request: EvalRequest, adapter: str | None) -> None:
        self.current = Generation(f"g{next(self.tokens)}", self.screen.model, ref, adapter)
        # not a Textual worker: one starts on the loop's next pass, after a repaint (~6 ms)
        self.sender = threading.Thread(
            target=self._send, args=(self.current.token, ref.version, request, adapter), daemon=True, name="send"
        )
        self.sender.start()

    def _send(self, token: str, version: PromptVersion, request: EvalRequest, adapter: str | None) -> None:
        """Fill the template (reads the dataset), find the adapter and send the request, off the UI loop."""
        app = self.screen.app
        try:
            self._send_now(token, version, request, adapter)
        except Exception as exc:  # a bug: handled as a Textual worker's would be (the app shows it and exits)
            app.call_from_thread(app._handle_exception, exc)

    def _send_now(self, token: str, version: PromptVersion, request: EvalRequest, adapter: str | None) -> None:
        from core.engine import protocol as wire
        from core.engine.engines import is_local

        app = self.screen.tunelab
        if not is_local(self.screen.model):  # an engine of its own (a server): run here, not in the worker
            return self._on_engine(token, version, request)
        try:
            prompt = app.workbench.fill_prompt(version, request.selection)
            path = str(app.workbench.adapters.adapter_path(adapter)) if adapter else None
            rid = app.client.generate(
                prompt.to_dict(), version.params, lambda event: app.post_worker_event(event, token), adapter=path
            )  # sent at once: a round trip through the UI loop first would delay every run by a frame
        except (OSError, TunelabError) as exc:
            self.screen.post_message(WorkerError(wire.Error(str(exc), None, "generate"), token))
            return
        app.call_from_thread(self._sent, token, rid, prompt)

    def _on_engine(self, token: str, version: PromptVersion, request: EvalRequest) -> None:
        """A generation on the model's own engine (a served model), in this (sender) thread: its chunks
        coalesced to one message per CHUNK_S, as the worker's are; every outcome arrives as the worker's
        events would."""
        from core.engine import protocol as wire
        from core.engine.engines import engine_for
        from core.engine.params import GenParams

        app, rid = self.screen.tunelab, f"{SERVED}{token}"
        current = self.answering(token)
        stop = current.stop if current is not None else threading.Event()
        pending: list[str] = []
        sent_at, counted = [time.monotonic()], [0]

        def emit(text: str, tokens: int) -> None:
            pending.append(text)
            counted[0] = tokens
            if time.monotonic() - sent_at[0] >= CHUNK_S:
                self._post(wire.Chunk(rid, "".join(pending), tokens), token)
                pending.clear()
                sent_at[0] = time.monotonic()

        try:
            prompt = app.workbench.fill_prompt(version, request.selection)
            app.call_from_thread(self._sent, token, rid, prompt)
            self._post(wire.Started(rid, prompt.text, 0), token)
            model = self.screen.model
            engine = engine_for(model, app.local_engine)
            try:
                result = engine.generate(model, None, prompt, GenParams.from_dict(version.params), emit, stop)
            finally:
                getattr(engine, "close", lambda: None)()
        except (OSError, TunelabError) as exc:
            if pending:  # a stream that broke: the pane (and the history's partial answer) keeps every piece
                self._post(wire.Chunk(rid, "".join(pending), counted[0]), token)
            self._post(wire.Error(str(exc), None, "generate"), token)
            return
        if pending:
            self._post(wire.Chunk(rid, "".join(pending), result.completion_tokens), token)
        self._post(wire.Done(rid, result), token)

    def _post(self, event: Any, token: str) -> None:
        if (message := worker_message(event, token)) is not None:
            self.screen.post_message(message)

    def _sent(self, token: str, rid: str, prompt: Prompt) -> None:
        if (current := self.answering(token)) is not None:
            current.rid, current.prompt = rid, prompt
            if current.cancel and current.in_worker:
                self.screen.tunelab.client.cancel(rid)

    def answering(self, token: str | None) -> Generation | None:
        """The current generation when `token` names it (a stale run's events are dropped)."""
        return self.current if self.current is not None and self.current.token == token else None

    def cancel(self) -> bool:
        """Cancel the current generation (now, or once its request id is known); False when there is none."""
        if self.current is None:
            return False
        self.current.cancel = True
        self.current.stop.set()
        if self.current.in_worker:
            self.screen.tunelab.client.cancel(str(self.current.rid))
        return True

    def started(self, token: str | None, rendered_prompt: str) -> bool:
        if (current := self.answering(token)) is None:
            return False
        current.rendered_prompt, current.started_at = rendered_prompt, time.monotonic()
        return True

    def chunk(self, token: str | None, text: str) -> float | None:
        """Keep a streamed piece; the seconds since the first token, or None for a stale run's."""
        if (current := self.answering(token)) is None:
            return None
        current.streamed.append(text)
        return time.monotonic() - current.started_at

    def finish(self, *, status: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        """End the current generation and save it to history (off the UI loop), whatever its status."""
        current, self.current = self.current, None
        if current is None:
            return
        from core.engine.prompt import Prompt

        version = current.ref.version
        fields = dict(
            model=current.model,
            prompt=current.prompt or Prompt(version.template, version.system, version.mode),
            params=version.params,
            status=status,
            result=result,
            error=error,
            streamed="".join(current.streamed),
            rendered_prompt=current.rendered_prompt,
            adapter=current.adapter,
            named=current.ref,
        )
        self.screen.run_worker(lambda: self._save(fields), thread=True, group="history", exclusive=False)

    def _save(self, fields: dict[str, Any]) -> None:
        try:
            self.screen.tunelab.workbench.save_generation(**fields)
        except (OSError, TunelabError) as exc:
            self.screen.post_message(WorkbenchFailed(f"history not saved: {exc}"))

    def close(self) -> None:
        """Quitting mid-stream: stop the request, do not wait for it."""
        if self.current is not None:
            self.current.stop.set()
            if self.current.in_worker:
                self.screen.tunelab.client.cancel(str(self.current.rid))
