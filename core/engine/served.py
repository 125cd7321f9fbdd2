"""Models someone serves over an OpenAI-compatible API (vLLM, llama.cpp's server, Ollama, `transformers
serve`, a hosted API), named where a model is named: `endpoint:NAME` for one in config.toml's
`[endpoints.NAME]` or inline as `http://HOST:PORT/v1#MODEL` (`core.engine.endpoints`).

The client (httpx) sends chat completions (system prompt and turns) or, in raw mode, completions;
streams with the same chunks as local generation; retries 429 and every 5xx but 501 and 505 (RETRIED)
with backoff (honouring `Retry-After`), and a connection dropped before any text was shown, at most
RETRIES times; never retries once a piece was shown (one line says the stream broke and what was kept);
bounds every call in time (a per-read `timeout_s`, and one deadline for the whole call that keep-alives
and empty events do not extend) and size (every body read as it streams under MAX_ANSWER_BYTES, each
streamed line under MAX_LINE_BYTES, a stream without usage stopped at its token budget); drops a
decoding field the server refuses (422/400 naming it) once, and says so once. Every failure is one line
naming the endpoint and what happened, never the key nor a URL's credentials. The result has the local
generation's fields, plus `finish_reason`, the server's model id and `system_fingerprint`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.engine.endpoints import PREFIX, Endpoint, endpoint, is_served, loads_lora, shown
from core.engine.params import GenParams
from core.engine.prompt import Prompt, chat_turns
from core.engine.served_io import (
    DONE,
    MAX_ANSWER_BYTES,
    MAX_LINE_BYTES,
    Broken,
    Deadline,
    Late,
    capped_lines,
    error_text,
    events,
    read_capped,
    retry_after,
    transport,
)
from core.errors import TunelabError
from core.faults import fault_int

__all__ = ["PREFIX", "Endpoint", "endpoint", "is_served", "loads_lora", "shown", "MAX_ANSWER_BYTES", "MAX_LINE_BYTES"]

RETRIES = 4
RETRY_AFTER_CAP_S = 60.0
RETRIED = frozenset({429, *range(500, 600)} - {501, 505})  # 501 and 505: asking again never mends them
OPTIONAL = ("seed", "stop", "top_p")  # dropped, one at a time, when a server refuses them
HOLD_CAP_S = 60.0  # the longest the `hold_served_stream_after` fault keeps a stream waiting for a cancel
LISTED = "listed:"  # an adapter ref the server lists by name (in the place of a local adapter's path)


def listed_adapter(spec: str, name: str) -> str:
    """`name` as a LoRA the served model `spec`'s server lists (an entry of `/v1/models` with a parent), as
    the ref its rows are generated with; one line naming what it lists when it lists no such one."""
    client = ServedClient(endpoint(spec))
    try:
        listed = client.adapters()
    finally:
        client.close()
    if name not in listed:
        known = ", ".join(sorted(listed)[:8]) or "none"
        raise TunelabError(
            f"no adapter '{name}': not a folder, not a training run, and {client._where()} lists no such LoRA "
            f"(its adapters: {known})"
        )
    return LISTED + name


class ServedClient:
    """Completions from one endpoint; safe to share between threads (evals send `max_concurrency` at once)."""

    def __init__(self, point: Endpoint) -> None:
        import httpx

        self.point = point
        headers = {"accept-encoding": "identity"}  # a body's bytes are its size: no compression bomb
        if point.key:
            headers["authorization"] = f"Bearer {point.key}"
        auth = httpx.BasicAuth(*point.auth) if point.auth and not point.key else None
        limits = httpx.Limits(max_connections=point.max_concurrency)
        self.http = httpx.Client(
            base_url=point.url.rstrip("/"), params=point.query, headers=headers, auth=auth, limits=limits
        )
        self.refused: set[str] = set()
        self.notes: list[str] = []  # said once each (a field the server refuses)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT folder (a path the server can read) into the server as model `name`, through vLLM's
        `POST /v1/load_lora_adapter`; one already loaded under that name is fine."""

        def loaded(response: Any, deadline: Deadline) -> None:
            if response.status_code < 400:
                return
            if "already" in error_text(response, deadline).lower():
                return
            if response.status_code in (404, 405):
                raise TunelabError(
                    f"{self._where()}: the server does not load LoRA adapters at run time (vLLM: --enable-lora "
                    "and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; otherwise name its --lora-modules as models)"
                )
            self._check(response, f"/load_lora_adapter ({path})", deadline)

        self._once("POST", "/load_lora_adapter", loaded, json={"lora_name": name, "lora_path": path})

    def adapters(self) -> dict[str, str]:
        """The LoRA adapters the server lists in `/v1/models` (vLLM's `--lora-modules` and the ones loaded at
        run time): each id with its `parent`, the base it adapts. A server that lists none: empty."""

        def listed(response: Any, deadline: Deadline) -> Any:
            self._check(response, "/models", deadline)
            return self._json(read_capped(response, MAX_ANSWER_BYTES, deadline))

        data = self._once("GET", "/models", listed)
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise TunelabError(f"{self._where()}: /models answered no 'data' list")
        return {
            str(row["id"]): str(row["parent"])
            for row in rows
            if isinstance(row, dict) and row.get("id") and isinstance(row.get("parent"), str)
        }

    def _once(self, method: str, path: str, read: Callable[[Any, Deadline], Any], **kwargs: Any) -> Any:
        """One small request (not a generation), under the endpoint's deadline: what `read` makes of its
        answer, or its failure as one line."""
        deadline = Deadline(self.point.deadline())
        try:
            with self._open(method, path, deadline, **kwargs) as response:
                return read(response, deadline)
        except Exception as exc:
            raise self._failure(exc, deadline, 0) from None

    @contextmanager
    def _open(self, method: str, path: str, deadline: Deadline, **kwargs: Any) -> Iterator[Any]:
        """A request whose body is read as it streams, each read waiting at most `timeout_s` and never past
        the call's deadline (then the watch shuts the connection)."""
        import httpx

        deadline.check()
        per_read = min(self.point.timeout_s, deadline.left())
        timeout = httpx.Timeout(per_read, connect=min(10.0, per_read))
        with self.http.stream(method, path, timeout=timeout, **kwargs) as response, deadline.watch(response):
            yield response

    def _failure(self, exc: Exception, deadline: Deadline, shown_chars: int) -> Exception:
        """What a call's failure says, in one line (an exception that is no failure of the call: itself)."""
        import httpx

        if isinstance(exc, TunelabError):
            return exc
        if not isinstance(exc, (httpx.HTTPError, OSError, Broken, Late, ValueError)):
            return exc  # a bug: its traceback
        if deadline.over():
            why = f"no complete answer within {deadline.seconds:g} s (deadline_s: the whole call)"
        elif isinstance(exc, Broken):
            why = str(exc)
        elif isinstance(exc, httpx.TimeoutException):
            why = f"no answer within {self.point.timeout_s:g} s (timeout_s)"
        elif isinstance(exc, httpx.TransportError):
            why = self.point.scrub(transport(exc))
        else:
            return exc
        if shown_chars:
            return TunelabError(
                f"{self._where()}: the stream broke after {shown_chars} characters were shown: {why}; not retried "
                f"(the {shown_chars} shown stay as a partial answer, never cached)"
            )
        return TunelabError(f"{self._where()}: {why}")

    def complete(
        self,
        prompt: Prompt,
        params: GenParams,
        emit: Callable[[str, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        """One generation; streamed through `emit` when given. Raises TunelabError (one line) on failure."""
        raw = prompt.mode == "raw"
        path = "/completions" if raw else "/chat/completions"
        budget = "max_completion_tokens" if "max_tokens" in self.refused else "max_tokens"
        body: dict[str, Any] = {"model": self.point.model, budget: params.max_new_tokens}
        body["temperature"] = params.temperature
        if raw:
            body["prompt"] = "\n\n".join(t["content"] for t in chat_turns(prompt))
        else:
            body["messages"] = [{"role": t["role"], "content": t.get("content") or ""} for t in chat_turns(prompt)]
        for name, value in (("top_p", params.top_p), ("seed", params.seed), ("stop", list(params.stop) or None)):
            if value is not None and name not in self.refused:
                body[name] = value
        body["stream"] = emit is not None
        start = time.monotonic()
        deadline = Deadline(self.point.deadline(params.max_new_tokens))
        answer = self._send(path, body, emit, cancel or threading.Event(), deadline)
        latency = time.monotonic() - start
        tokens = answer["completion_tokens"]
        return {
            "output": answer["text"],
            "rendered_prompt": body.get("prompt") or json.dumps(body["messages"], ensure_ascii=False),
            "prompt_tokens": answer["prompt_tokens"],
            "completion_tokens": tokens,
            "stop_reason": answer["stop_reason"],
            "finish_reason": answer["finish_reason"],
            "latency_s": round(latency, 4),
            "ttft_s": round(answer["ttft"] - start, 4) if answer["ttft"] else None,
            "tok_per_s": round(tokens / latency, 2) if latency > 0 and tokens else 0.0,
            "served_model": answer["model"],
            "system_fingerprint": answer["fingerprint"],
            "endpoint": self.point.name,
        }

    def _send(
        self,
        path: str,
        body: dict[str, Any],
        emit: Callable[[str, int], None] | None,
        cancel: threading.Event,
        deadline: Deadline,
    ) -> dict[str, Any]:
        import httpx

        got: list[str] = []  # the pieces shown: once there is one, nothing is retried
        for attempt in range(RETRIES + 1):
            if cancel.is_set():
                return _answer("", "cancelled", None, body, {})
            try:
                with self._open("POST", path, deadline, json=body) as response:
                    status = response.status_code
                    wait = retry_after(response.headers.get("retry-after"), attempt, RETRY_AFTER_CAP_S)
                    if status in RETRIED and attempt < RETRIES and wait < deadline.left():
                        response.close()
                        if cancel.wait(wait):
                            return _answer("", "cancelled", None, body, {})
                        continue
                    if status in (400, 422) and (dropped := self._refused_field(response, body, deadline)):
                        body = _without(body, dropped)
                        continue
                    self._check(response, path, deadline)
                    if body.get("stream") and "event-stream" in response.headers.get("content-type", ""):
                        return self._streamed(response, body, emit, cancel, deadline, got)
                    return self._whole(response, body, deadline)  # (a server may answer a stream whole)
            except Exception as exc:
                failure = self._failure(exc, deadline, len("".join(got)))
                dropped_early = isinstance(exc, httpx.RemoteProtocolError) and not got and not deadline.over()
                if dropped_early and attempt < RETRIES:  # a dropped connection, before any text: asked again
                    if cancel.wait(min(retry_after(None, attempt, RETRY_AFTER_CAP_S), max(0.0, deadline.left()))):
                        return _answer("", "cancelled", None, body, {})
                    continue
                raise failure from None
        raise TunelabError(f"{self._where()}: still refused after {RETRIES} retries")

    def _where(self) -> str:
        return f"endpoint {self.point.name} ({self.point.shown_url})"

    def _json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            said = " ".join(self.point.scrub(text[:2000]).split())[:60]
            raise TunelabError(f"{self._where()}: the answer is not JSON ({said!r})") from None

    def _refused_field(self, response: Any, body: dict[str, Any], deadline: Deadline) -> str | None:
        """The optional field a 400/422 names, dropped from now on (said once), or None. A server that wants
        `max_completion_tokens` for `max_tokens` (OpenAI's newer models) gets the budget under that name."""
        text = error_text(response, deadline)
        field: str | None
        if "max_tokens" in body and "max_tokens" in text and "max_completion_tokens" in text:
            field, said = "max_tokens", "wants 'max_completion_tokens' for 'max_tokens': sent so from now on"
        else:
            field = next((f for f in OPTIONAL if f not in self.refused and f in body and f in text), None)
            said = f"refuses '{field}': sent without it from now on"
        if field is not None:
            with self.lock:
                self.refused.add(field)
                self.notes.append(f"{self._where()} {said}")
        return field

    def _check(self, response: Any, path: str, deadline: Deadline) -> None:
        status = response.status_code
        if status < 400:
            return
        said = error_text(response, deadline)
        detail = " ".join(self.point.scrub(said).split())[:160]  # hidden before it is cut: no key's head
        hint = {
            401: "unauthorized (no key: set api_key_env)"
            if not self.point.api_key_env
            else f"unauthorized (${self.point.api_key_env} is not set)"
            if not self.point.key
            else f"unauthorized (the key in ${self.point.api_key_env})",
            403: "forbidden",
            404: f"not found ({path} for model '{self.point.model}')",
            429: "too many requests, still after retries",
        }.get(status, "the server failed")
        raise TunelabError(f"{self._where()}: HTTP {status} {hint}" + (f": {detail}" if detail else ""))

    def _whole(self, response: Any, body: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        data = self._json(read_capped(response, MAX_ANSWER_BYTES, deadline))
        if not isinstance(data, dict):
            raise TunelabError(f"{self._where()}: the answer is not a JSON object")
        choice = (data.get("choices") or [{}])[0]
        text = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content")
        if not isinstance(text, str):
            raise TunelabError(f"{self._where()}: the answer has no text in choices[0]")
        return _answer(text, _stop(choice.get("finish_reason")), choice.get("finish_reason"), body, data)

    def _streamed(
        self,
        response: Any,
        body: dict[str, Any],
        emit: Callable[[str, int], None] | None,
        cancel: threading.Event,
        deadline: Deadline,
        got: list[str],
    ) -> dict[str, Any]:
        """The stream's pieces, shown through `emit` and kept in `got`, up to the token budget: the server's
        usage when a chunk has it, else a piece a token (a piece past the budget ends it as `length`)."""
        last: dict[str, Any] = {}
        finish, first, budget = None, None, _budget(body)
        hold = fault_int("hold_served_stream_after")
        for data in events(capped_lines(response, deadline), deadline):
            if cancel.is_set():
                return _answer("".join(got), "cancelled", None, body, last, first, len(got))
            if data is DONE:  # the server's end of stream, with or without a finish_reason before it
                finish = finish or "stop"
                break
            if data.get("error"):  # vLLM and others report a failure mid-stream as an event
                error = data["error"]
                said = str(error.get("message", error) if isinstance(error, dict) else error)
                said = " ".join(self.point.scrub(said).split())[:160]
                kept = f"the {len(''.join(got))} characters shown stay" if got else "nothing kept"
                raise TunelabError(f"{self._where()}: the server failed mid-stream: {said} ({kept})")
            choice = (data.get("choices") or [{}])[0]
            piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
            if piece:
                if budget and _spent(data, len(got) + 1) > budget:  # a stream that would not stop
                    return _answer("".join(got), "length", "length", body, last, first, len(got))
                first = first or time.monotonic()
                got.append(piece)
                if emit:
                    emit(piece, len(got))
                if len(got) == hold:  # a test's "mid-stream", on any host
                    cancel.wait(HOLD_CAP_S)
            last = data
            finish = choice.get("finish_reason") or finish
            if finish:
                break
        else:
            raise Broken("the stream ended with no [DONE] and no finish_reason")
        return _answer("".join(got), _stop(finish), finish, body, last, first, len(got))


def _spent(data: dict[str, Any], pieces: int) -> int:
    """Tokens generated so far: the chunk's usage when the server streams it, else the pieces counted."""
    usage = data.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) else pieces


def _without(body: dict[str, Any], field: str) -> dict[str, Any]:
    """The request without a refused field (the token budget: under its other name)."""
    out = {k: v for k, v in body.items() if k != field}
    if field == "max_tokens":
        out["max_completion_tokens"] = body["max_tokens"]
    return out


def _budget(body: dict[str, Any]) -> int:
    return int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def _answer(
    text: str,
    reason: str,
    finish: str | None,
    body: dict[str, Any],
    data: dict[str, Any],
    first: float | None = None,
    pieces: int | None = None,
) -> dict[str, Any]:
    """An answer as the client reports it. Without the server's usage, a stream counts the pieces it got (a
    token each, as servers stream), and a whole answer its words (an estimate)."""
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    return {
        "text": text,
        "stop_reason": reason,
        "finish_reason": finish,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens") or pieces or len(text.split()),
        "model": data.get("model"),
        "fingerprint": data.get("system_fingerprint"),
        "ttft": first,
    }


def _stop(finish: Any) -> str:
    return {"stop": "eos", "length": "length", "eos": "eos"}.get(str(finish), "eos")
