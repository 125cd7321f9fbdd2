"""Served models: items/s of an eval's calls through tunelab's client (`ServedEngine`, its thread pool and
httpx client) against a local server that answers at once, versus a bare httpx loop with the same
concurrency sending the same bodies. The client should add no queueing of its own."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import Result, alternated

ITEMS = 200
CONCURRENCY = 4  # an inline endpoint's max_concurrency (config.toml's default too)
ANSWER = json.dumps(
    {
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }  # fmt: skip
).encode()


class Instant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and the hosted APIs answer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


def ours(url: str) -> float:
    """Items/s of one eval batch through `ServedEngine` (what `run_eval` hands a served model's calls)."""
    import time

    from core.engine.engines import ServedEngine
    from core.engine.params import GenParams
    from core.engine.prompt import Prompt

    engine, done = ServedEngine(), []
    prompts = [Prompt(f"item {i}", "", "chat") for i in range(ITEMS)]
    began = time.perf_counter()
    engine.batch(url, None, prompts, GenParams(max_new_tokens=4), lambda i, r: done.append(i), threading.Event())
    elapsed = time.perf_counter() - began
    assert len(done) == ITEMS
    return ITEMS / elapsed


def bare(url: str) -> float:
    """Items/s of the same requests from CONCURRENCY threads sharing one httpx client: the floor."""
    import time

    import httpx

    base, _, model = url.partition("#")
    with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        def one(i: int) -> None:
            body = {"model": model, "max_tokens": 4, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stream": False,
                    "messages": [{"role": "user", "content": f"item {i}"}]}  # fmt: skip
            client.post("/chat/completions", json=body).json()

        began = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, range(ITEMS)))
        return ITEMS / (time.perf_counter() - began)


def run() -> list[Result]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Instant)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1#m"
    try:
        with_client, floor = alternated(lambda: ours(url), lambda: bare(url))
    finally:
        server.shutdown()
    return [
        Result.paired(
            "served eval: items/s vs a bare httpx loop",
            with_client,
            floor,
            "items/s",
            ">= 0.9x bare httpx",
            lambda ratio: ratio >= 0.9,
            f"{ITEMS} calls, {CONCURRENCY} in flight, to a local server that answers at once; "
            f"tunelab {with_client.spread(' items/s')}, bare {floor.spread(' items/s')}",
        )
    ]
