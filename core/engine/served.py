"""Models someone serves over an OpenAI-compatible API (vLLM, llama.cpp's server, Ollama, `transformers
serve`, a hosted API), named where a model is named: `endpoint:NAME` for one in config.toml's
`[endpoints.NAME]` (`base_url`, `model`, `api_key_env`: the name of an environment variable, never the
key; `max_concurrency`, `timeout_s`, `price_in`/`price_out` per million tokens), or inline as
`http://HOST:PORT/v1#MODEL`.

The client (httpx) sends chat completions (system prompt and turns) or, in raw mode, completions;
streams with the same chunks as local generation; retries 429 and 5xx with backoff (honouring
`Retry-After`) before the first byte, at most RETRIES times; bounds every answer in time (connect and
read timeouts) and size (MAX_ANSWER_BYTES); drops a decoding field the server refuses (422/400 naming
it) once, and says so once. Every failure is one line naming the endpoint and what happened, never the
key. The result has the local generation's fields, plus `finish_reason`, the server's model id and
`system_fingerprint`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from core.engine.params import GenParams
from core.engine.prompt import Prompt, chat_turns
from core.errors import TunelabError
from core.faults import fault_int

PREFIX = "endpoint:"
INLINE = re.compile(r"^(?P<url>https?://[^#\s]+)#(?P<model>[^#\s]+)$")
RETRIES = 4
RETRY_AFTER_CAP_S = 60.0
MAX_ANSWER_BYTES = 8 * 2**20
OPTIONAL = ("seed", "stop", "top_p")  # dropped, one at a time, when a server refuses them
DONE: dict[str, Any] = {}  # `[DONE]`: the stream's end, told apart from a connection that just closes
HOLD_CAP_S = 60.0  # the longest the `hold_served_stream_after` fault keeps a stream waiting for a cancel


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    max_concurrency: int = 4
    timeout_s: float = 120.0
    price_in: float | None = None  # per million input tokens
    price_out: float | None = None
    loads_lora: bool = False  # vLLM with runtime LoRA updates: a local --adapter is loaded into the server

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.base_url):
            raise TunelabError(f"endpoint {self.name}: base_url must start with http:// or https://")
        if not self.model:
            raise TunelabError(f"endpoint {self.name}: model must not be empty")
        if not 1 <= self.max_concurrency <= 256:
            raise TunelabError(f"endpoint {self.name}: max_concurrency must be between 1 and 256")
        if not 0 < self.timeout_s <= 3600:
            raise TunelabError(f"endpoint {self.name}: timeout_s must be above 0 and at most 3600")
        if not isinstance(self.loads_lora, bool):
            raise TunelabError(f"endpoint {self.name}: loads_lora must be true or false")
        for price in ("price_in", "price_out"):
            value = getattr(self, price)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1e6):
                raise TunelabError(f"endpoint {self.name}: {price} must be a price per million tokens, 0 or more")

    def cost(self) -> dict[str, Any]:
        """What the verdict prices a served row with: the endpoint's prices per million tokens, if set."""
        prices = {"price_in": self.price_in, "price_out": self.price_out}
        return {"served": self.name, **{k: v for k, v in prices.items() if v is not None}}

    @property
    def key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def fingerprint(self) -> str:
        """What the cache keys a served model by: the URL and the model name (the server's own id is in
        each result)."""
        return f"served:{self.base_url.rstrip('/')}#{self.model}"


def is_served(spec: str | None) -> bool:
    return bool(spec) and (str(spec).startswith(PREFIX) or INLINE.match(str(spec)) is not None)


def loads_lora(spec: str) -> bool:
    """Whether a served model takes tunelab's adapters (its endpoint says `loads_lora`); unknown: no."""
    try:
        return is_served(spec) and endpoint(spec).loads_lora
    except TunelabError:
        return False


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


def endpoint(spec: str) -> Endpoint:
    """The endpoint a model spec names (config.toml's, or the inline URL#MODEL form)."""
    if match := INLINE.match(spec):
        return Endpoint(spec, match["url"], match["model"])
    from core.storage.config import load_config

    name = spec.removeprefix(PREFIX)
    tables = load_config().endpoints
    table = tables.get(name)
    if table is None:
        known = ", ".join(sorted(tables)) or "none"
        raise TunelabError(f"no endpoint '{name}' in the config file's [endpoints] (known: {known})")
    names = {f.name for f in fields(Endpoint)} - {"name"}
    if unknown := sorted(set(table) - names):
        raise TunelabError(f"endpoints.{name}: unknown field '{unknown[0]}' (known: {', '.join(sorted(names))})")
    try:
        return Endpoint(name, **table)
    except TypeError as exc:
        raise TunelabError(f"endpoints.{name}: {exc}") from None


class ServedClient:
    """Completions from one endpoint; safe to share between threads (evals send `max_concurrency` at once)."""

    def __init__(self, point: Endpoint) -> None:
        import httpx

        self.point = point
        headers = {"Authorization": f"Bearer {point.key}"} if point.key else {}
        timeout = httpx.Timeout(point.timeout_s, connect=min(10.0, point.timeout_s))
        limits = httpx.Limits(max_connections=point.max_concurrency)
        self.http = httpx.Client(base_url=point.base_url.rstrip("/"), headers=headers, timeout=timeout, limits=limits)
        self.refused: set[str] = set()
        self.notes: list[str] = []  # said once each (a field the server refuses)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT folder (a path the server can read) into the server as model `name`, through vLLM's
        `POST /v1/load_lora_adapter`; one already loaded under that name is fine."""
        response = self._request("POST", "/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        if response.status_code < 400 or "already" in response.text[:2000].lower():
            return
        if response.status_code in (404, 405):
            raise TunelabError(
                f"{self._where()}: the server does not load LoRA adapters at run time (vLLM: --enable-lora and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; otherwise name its --lora-modules as models)"
            )
        self._check(response, f"/load_lora_adapter ({path})")

    def adapters(self) -> dict[str, str]:
        """The LoRA adapters the server lists in `/v1/models` (vLLM's `--lora-modules` and the ones loaded at
        run time): each id with its `parent`, the base it adapts. A server that lists none: empty."""
        response = self._request("GET", "/models")
        self._check(response, "/models")
        data = _json(_bounded_text(response), self._where())
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise TunelabError(f"{self._where()}: /models answered no 'data' list")
        return {
            str(row["id"]): str(row["parent"])
            for row in rows
            if isinstance(row, dict) and row.get("id") and isinstance(row.get("parent"), str)
        }

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One small request (not a generation): its timeout or transport failure as one line."""
        import httpx

        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise TunelabError(f"{self._where()}: no answer within {self.point.timeout_s:g} s (timeout_s)") from None
        except httpx.TransportError as exc:
            raise TunelabError(f"{self._where()}: {_transport(exc)}") from None

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
        answer = self._send(path, body, emit, cancel or threading.Event(), start)
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
        start: float,
    ) -> dict[str, Any]:
        import httpx

        for attempt in range(RETRIES + 1):
            if cancel.is_set():
                return _answer("", "cancelled", None, body, {})
            try:
                with self.http.stream("POST", path, json=body) as response:
                    if response.status_code in (429, 500, 502, 503, 504) and attempt < RETRIES:
                        wait = _retry_after(response.headers.get("retry-after"), attempt)
                        response.close()
                        if cancel.wait(wait):
                            return _answer("", "cancelled", None, body, {})
                        continue
                    if response.status_code in (400, 422) and (dropped := self._refused_field(response, body)):
                        body = _without(body, dropped)
                        continue
                    self._check(response, path)
                    if body.get("stream") and "event-stream" in response.headers.get("content-type", ""):
                        return self._streamed(response, body, emit, cancel)  # (a server may answer whole)
                    return self._whole(response, body)
            except httpx.TimeoutException:
                raise TunelabError(
                    f"{self._where()}: no answer within {self.point.timeout_s:g} s (timeout_s)"
                ) from None
            except httpx.TransportError as exc:
                # a connection the server dropped is retried; one it refuses (not up, wrong port) is said at once
                if attempt < RETRIES and isinstance(exc, httpx.RemoteProtocolError):
                    if cancel.wait(_retry_after(None, attempt)):
                        return _answer("", "cancelled", None, body, {})
                    continue
                raise TunelabError(f"{self._where()}: {_transport(exc)}") from None
        raise TunelabError(f"{self._where()}: still refused after {RETRIES} retries")

    def _where(self) -> str:
        return f"endpoint {self.point.name} ({self.point.base_url})"

    def _refused_field(self, response: Any, body: dict[str, Any]) -> str | None:
        """The optional field a 400/422 names, dropped from now on (said once), or None. A server that wants
        `max_completion_tokens` for `max_tokens` (OpenAI's newer models) gets the budget under that name."""
        text = _bounded_text(response)
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

    def _check(self, response: Any, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = " ".join(_bounded_text(response).split())[:160]
        if self.point.key:
            detail = detail.replace(self.point.key, "***")
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

    def _whole(self, response: Any, body: dict[str, Any]) -> dict[str, Any]:
        data = _json(_bounded_text(response), self._where())
        if not isinstance(data, dict):
            raise TunelabError(f"{self._where()}: the answer is not a JSON object")
        choice = (data.get("choices") or [{}])[0]
        text = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content")
        if not isinstance(text, str):
            raise TunelabError(f"{self._where()}: the answer has no text in choices[0]")
        return _answer(text, _stop(choice.get("finish_reason")), choice.get("finish_reason"), body, data)

    def _streamed(
        self, response: Any, body: dict[str, Any], emit: Callable[[str, int], None] | None, cancel: threading.Event
    ) -> dict[str, Any]:
        parts: list[str] = []
        last: dict[str, Any] = {}
        size, finish, first = 0, None, None
        hold = fault_int("hold_served_stream_after")
        for data in _events(response.iter_lines()):
            if data is None:  # a torn chunk: the stream broke off mid-way
                raise TunelabError(
                    f"{self._where()}: the stream was cut after {len(''.join(parts))} characters (nothing kept)"
                )
            if cancel.is_set():
                return _answer("".join(parts), "cancelled", None, body, last, first, len(parts))
            if data is DONE:  # the server's end of stream, with or without a finish_reason before it
                finish = finish or "stop"
                break
            if data.get("error"):  # vLLM and others report a failure mid-stream as an event
                error = data["error"]
                said = " ".join(str(error.get("message", error) if isinstance(error, dict) else error).split())
                if self.point.key:
                    said = said.replace(self.point.key, "***")
                raise TunelabError(f"{self._where()}: the server failed mid-stream: {said[:160]} (nothing kept)")
            last = data
            choice = (data.get("choices") or [{}])[0]
            piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
            if piece:
                first = first or time.monotonic()
                parts.append(piece)
                size += len(piece.encode())
                if emit:
                    emit(piece, len(parts))
                if len(parts) == hold:  # a test's "mid-stream", on any host
                    cancel.wait(HOLD_CAP_S)
                if size > MAX_ANSWER_BYTES or len(parts) > _budget(body) + 16:  # a stream that never ends
                    return _answer("".join(parts), "length", "length", body, last, first, len(parts))
            finish = choice.get("finish_reason") or finish
            if finish:
                break
        else:
            if finish is None:
                raise TunelabError(
                    f"{self._where()}: the stream was cut after {len(''.join(parts))} characters (nothing kept)"
                )
        return _answer("".join(parts), _stop(finish), finish, body, last, first, len(parts))


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


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """Server-sent events: each `data:` line's JSON, then DONE at `[DONE]` (None for a line that is not JSON)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            yield DONE
            return
        try:
            data = json.loads(payload)
        except ValueError:
            yield None
            return
        if isinstance(data, dict):
            yield data


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise TunelabError(f"{where}: the answer is not JSON ({' '.join(text.split())[:60]!r})") from None


def _bounded_text(response: Any) -> str:
    """The body, at most MAX_ANSWER_BYTES of it."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            break
    return b"".join(chunks)[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace")


def _retry_after(header: str | None, attempt: int) -> float:
    """The server's Retry-After (seconds), else an exponential backoff; capped either way."""
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(header))) if header else min(8.0, 0.5 * 2**attempt)
    except ValueError:
        return min(8.0, 0.5 * 2**attempt)


def _transport(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is the server running?)"
    return " ".join(text.split())[:160]
