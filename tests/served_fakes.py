"""A small OpenAI-compatible server that misbehaves on purpose, picked by the request's `model`:
`ok`, `429` (once, with Retry-After), `500` (once), `cut` (a stream that stops mid-way), `endless` (a
stream that never ends), `midfail` (an error event mid-stream), `nofinish` (a stream ending with `[DONE]`
and no finish_reason), `badjson`, `slow` (first byte later than any timeout here), `401` (echoing the key
and the query it was sent, as some servers do), `520` (once; a 5xx beyond the usual four), `501` (always),
`drop` (the first answer to each prompt: its connection dropped after two pieces), `trickle` (a keep-alive or an empty event
every 0.2 s, for up to 30 s), `longline` (a streamed line that never ends), `noseed`
(refuses the `seed` field with 422, as some servers refuse fields), `newmax` (wants `max_completion_tokens`
for `max_tokens`, as OpenAI's newer models do), `judge` (a judge model: PASS when the
output it is shown says "sunny" and the rubric asks about the weather, SCORE 0.2 otherwise, and an answer
with no verdict when the rubric says "vague"). `GET /v1/models` lists `ok` and its LoRA `ok-lora` (under
a path with `huge`: a 50 MB list). `Handler.sent` counts what the big answers got out before the client
stopped reading (each is in it once it has ended)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["It", " is", " sunny", "."]


class Handler(BaseHTTPRequestHandler):
    seen: Counter = Counter()
    auth: list[str] = []
    paths: list[str] = []
    loaded: list[dict] = []
    sent: dict[str, int] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        """`/v1/models` as vLLM lists it: the base, and a LoRA of it (`--lora-modules ok-lora=...`)."""
        if not self.path.partition("?")[0].endswith("/models"):
            return self._json(404, {"error": "not found"})
        if "huge" in self.path:
            return self._huge()
        listed = [{"id": "ok", "object": "model", "parent": None}, {"id": "ok-lora", "object": "model", "parent": "ok"}]
        self._json(200, {"object": "list", "data": listed})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path.endswith("/load_lora_adapter"):  # vLLM's runtime LoRA loading; a path with "nolora": 404
            Handler.loaded.append(body)
            if "huge" in str(body.get("lora_path")):  # a failure with a 50 MB body
                return self._huge(500)
            return self._json(404 if "nolora" in str(body.get("lora_path")) else 200, {"status": "ok"})
        behaviour = body.get("model", "ok")
        Handler.auth.append(self.headers.get("authorization", ""))
        Handler.paths.append(self.path)
        Handler.seen[behaviour] += 1
        first = Handler.seen[behaviour] == 1
        if behaviour == "401":  # as servers that echo what they refused
            sent = f"{self.headers.get('authorization', '')} {self.path}"
            return self._json(401, {"error": {"message": f"invalid api key: {sent}"}})
        if behaviour in ("520", "501") and (first or behaviour == "501"):
            return self._json(int(behaviour), {"error": "origin error"})
        asked = json.dumps(body.get("messages") or body.get("prompt"))
        Handler.seen[f"{behaviour} {asked}"] += 1
        if behaviour == "drop" and Handler.seen[f"{behaviour} {asked}"] == 1:  # each prompt's first answer
            return self._dropped(body.get("stream"))
        if behaviour in ("trickle", "longline"):
            return self._trickle(body.get("stream")) if behaviour == "trickle" else self._longline()
        if behaviour == "429" and first:
            return self._json(429, {"error": "slow down"}, {"Retry-After": "1"})
        if behaviour == "500" and first:
            return self._json(500, {"error": "boom"})
        if behaviour == "noseed" and "seed" in body:
            return self._json(422, {"detail": [{"loc": ["body", "seed"], "msg": "extra fields not permitted"}]})
        if behaviour == "newmax" and "max_tokens" in body:  # OpenAI's newer models
            message = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."  # fmt: skip
            return self._json(400, {"error": {"message": message, "param": "max_tokens"}})
        if behaviour == "badjson":
            return self._raw(200, b"<html>not json</html>", "text/html")
        if behaviour == "slow":
            time.sleep(5)
        if body.get("stream"):
            return self._stream(behaviour, "prompt" in body)
        text = self._judged(body) if behaviour == "judge" else "".join(WORDS)
        choice = {"text": text} if "prompt" in body else {"message": {"role": "assistant", "content": text}}
        self._json(200, {"model": f"served-{behaviour}", "system_fingerprint": "fp1",
                         "choices": [{**choice, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 4}})  # fmt: skip

    @staticmethod
    def _judged(body) -> str:
        asked = str(body.get("messages", [{}])[-1].get("content", ""))
        rubric, _, rest = asked.partition("INPUT:")
        if "vague" in rubric:
            return "It is hard to say."
        output = rest.rpartition("OUTPUT:")[2]
        return (
            "PASS\nit speaks of the weather" if "weather" in rubric and "sunny" in output else "SCORE: 0.2\noff topic"
        )

    def _stream(self, behaviour: str, raw: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        words = WORDS * (10**6 if behaviour == "endless" else 1)
        try:
            for n, word in enumerate(words):
                piece = {"text": word} if raw else {"delta": {"content": word}}
                self.wfile.write(f"data: {json.dumps({'model': 'served', 'choices': [piece]})}\n\n".encode())
                self.wfile.flush()
                if behaviour == "endless":
                    time.sleep(0.005)  # a slow model that never stops
                if behaviour == "midfail" and n == 1:  # vLLM's way to say a generation failed mid-way
                    self.wfile.write(b'data: {"error": {"message": "engine died", "code": 500}}\n\ndata: [DONE]\n\n')
                    return
                if behaviour == "cut" and n == 1:
                    self.wfile.write(b'data: {"choices": [{"delta": {"cont')  # cut mid-chunk
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
            end = {"model": "served", "choices": [{"delta": {}, "finish_reason": "stop"}]}
            if behaviour == "nofinish":  # a server that ends with [DONE] alone, no finish_reason
                self.wfile.write(b"data: [DONE]\n\n")
                return
            self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        except OSError:  # the client went away (an endless stream it stopped reading)
            pass

    def _dropped(self, stream: bool) -> None:
        """Two pieces (or part of a whole answer), then the connection closes short of the promised length."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if stream else "application/json")
        self.send_header("content-length", "100000")
        self.end_headers()
        for word in WORDS[:2] if stream else []:
            self.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'content': word}}]})}\n\n".encode())
        self.wfile.write(b"" if stream else b'{"choices": [')
        self.wfile.flush()
        self.connection.shutdown(2)

    def _trickle(self, stream: bool) -> None:
        """A server that keeps the connection busy and never answers: each read gets a few bytes in time."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if stream else "application/json")
        self.send_header("content-length", "1000000")
        self.end_headers()
        beats = [b": keep-alive\n\n", b'data: {"choices": [{"delta": {}}]}\n\n'] if stream else [b" "]
        try:
            for n in range(150):
                self.wfile.write(beats[n % len(beats)])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def _longline(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self._pour("longline", b'data: {"choices": [{"delta": {"content": "', b"x" * 2**16, 40 * 10**6)

    def _huge(self, status: int = 200) -> None:
        """A 50 MB `/v1/models`, every byte of it valid JSON."""
        row = json.dumps({"id": "m" * 200, "object": "model", "parent": None}).encode() + b","
        size = 50 * 10**6
        block = row * (2**16 // len(row))
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(size))
        self.end_headers()
        head, end = b'{"object": "list", "data": [', b'{"id": "last"}]}'
        body = size - len(head) - len(end)
        self._pour(f"huge{status}", head, block, body - body % len(block), tail=b" " * (body % len(block)) + end)

    def _pour(self, name: str, head: bytes, block: bytes, size: int, tail: bytes = b"") -> None:
        """`head`, then `block` over and over to `size` bytes, then `tail`; what got out in `sent[name]`."""
        sent = 0
        try:
            self.wfile.write(head)
            sent = len(head)
            while sent < len(head) + size:
                self.wfile.write(block)
                sent += len(block)
            self.wfile.write(tail)
            sent += len(tail)
        except OSError:  # the client stopped reading and closed
            pass
        finally:
            Handler.sent[name] = sent

    def _json(self, status: int, data, headers=None) -> None:
        self._raw(status, json.dumps(data).encode(), "application/json", headers)

    def _raw(self, status: int, payload: bytes, kind: str, headers=None) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def serve() -> tuple[ThreadingHTTPServer, str]:
    """A started server on a free port of 127.0.0.1, and its base URL."""
    Handler.seen, Handler.auth, Handler.paths, Handler.sent = Counter(), [], [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
