"""Where an eval's generations run: a `Backend` takes one batch of prompts for one (model, adapter,
params) and calls back each result. `HostBackend` runs in this process (the headless commands),
`WorkerBackend` through the model worker (the TUI), `ServedBackend` on an OpenAI-compatible endpoint
(whichever front end: the runner sends a served model's calls there)."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from core.engine import protocol as p
from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.errors import TunelabError

OnResult = Callable[[int, dict[str, Any]], None]


class Backend(Protocol):
    numerics: str  # `ModelOptions.numerics()` of the model it runs: part of every cache key

    def run(
        self,
        model: str,
        adapter: str | None,
        prompts: list[dict[str, Any]],
        params: dict[str, Any],
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None: ...


class HostBackend:
    """In-process generation (the headless commands) on one `ModelHost`: the base loads once per model,
    adapters are hot-swapped onto it, exactly as in the model worker."""

    def __init__(self, options: ModelOptions, on_loaded: Callable[[], object] | None = None) -> None:
        from core.engine.host import ModelHost

        self.options, self.numerics = options, options.numerics()
        self.host = ModelHost()
        self.model: str | None = None
        self.on_loaded = on_loaded  # a model is in: its generation starts (a watchdog's clock)

    def run(self, model, adapter, prompts, params, on_result, cancel) -> None:
        if model != self.model:
            self.host.load(replace(self.options, model=model))
            self.model = model
        if self.on_loaded is not None:
            self.on_loaded()
        self.host.batch(
            [Prompt.from_dict(x) for x in prompts],
            GenParams.from_dict(params),
            adapter,
            on_result=on_result,
            cancel=cancel,
        )


class WorkerBackend:
    """Generation through the model worker (the TUI), on the model it has loaded; adapters are
    hot-swapped there."""

    def __init__(self, client, model: str, numerics: str) -> None:
        self.client, self.model, self.numerics = client, model, numerics

    def run(self, model, adapter, prompts, params, on_result, cancel) -> None:
        if model != self.model:
            raise TunelabError(f"the workbench evaluates on the loaded model ({self.model}); load {model} first")
        events: queue.Queue = queue.Queue()
        rid = self.client.batch(prompts, params, events.put, adapter=adapter)
        asked = False
        while True:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if cancel.is_set() and not asked:
                    self.client.cancel(rid)
                    asked = True
                continue
            if isinstance(event, p.Item):
                try:
                    on_result(event.index, event.result.to_dict())  # the shape the cache keeps
                except BaseException:  # a row refused (or a bug): the rest of the batch is not wanted
                    self.client.cancel(rid)
                    raise
            elif isinstance(event, p.BatchDone):
                return
            else:  # Error or Crashed
                raise TunelabError(getattr(event, "message", "model worker failed"))


class ServedBackend:
    """Generation on a served model (`core.engine.served`): `max_concurrency` requests in flight, results
    called back as each answer arrives. A sampled call (temperature above 0) is marked so: never cached."""

    numerics = "served"

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.notes: list[str] = []

    def _client(self, model: str, adapter: str | None) -> Any:
        """The model's client; with an adapter (an endpoint with `loads_lora`), the adapter loaded into the
        server under a name of its own (its path's hash), and a client asking for that model."""
        from core.engine.served import LISTED, ServedClient, endpoint

        key = f"{model}\0{adapter or ''}"
        if key not in self.clients:
            point = endpoint(model)
            if adapter and adapter.startswith(LISTED):  # one the server lists: asked for by its name
                point, adapter = replace(point, model=adapter.removeprefix(LISTED)), None
            if adapter and not point.loads_lora:
                raise TunelabError(f"model {model} is served: a LoRA of it is the server's to load (loads_lora)")
            if adapter:
                name = f"tunelab-{Path(adapter).name[:24]}-{hashlib.sha256(adapter.encode()).hexdigest()[:10]}"
                loader = ServedClient(point)
                try:
                    loader.load_adapter(name, str(Path(adapter).resolve()))  # the server reads it by path
                finally:
                    loader.close()
                point = replace(point, model=name)
            self.clients[key] = ServedClient(point)
        return self.clients[key]

    def run(self, model, adapter, prompts, params, on_result, cancel) -> None:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        client = self._client(model, adapter)
        gen = GenParams.from_dict(params)

        def one(i: int) -> None:
            if cancel.is_set():
                return
            result = client.complete(Prompt.from_dict(prompts[i]), gen, cancel=cancel)
            if gen.temperature > 0:
                result["sampled"] = True
            on_result(i, result)

        with ThreadPoolExecutor(max_workers=client.point.max_concurrency, thread_name_prefix="served") as pool:
            futures = [pool.submit(one, i) for i in range(len(prompts))]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for future in futures:  # what has not started never will
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
        self.notes += [n for n in client.notes if n not in self.notes]
