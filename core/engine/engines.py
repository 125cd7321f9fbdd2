"""Engines: where a model's generations run. One protocol, three implementations, one function that picks.

`HostEngine` runs local models in this process (the headless commands), `WorkerEngine` through the model
worker (the TUI), `ServedEngine` on an OpenAI-compatible endpoint. An engine takes typed prompts and
parameters and gives typed results, streamed (`generate`) or batched (`batch`), and honours a cancel; it
says what a cache key must know of it (`numerics`, `fingerprint`), whether an answer may be cached, and
how an adapter is named to it (a folder locally, a name its server lists). `engine_for` is the one place a
model spec is told served from local; another engine (llama.cpp in process, a batch API) is one new file
and one entry in `ENGINES`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from core.engine import protocol as wire
from core.engine.endpoints import endpoint, is_served
from core.engine.modelref import fingerprint, resolve
from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.protocol import GenResult
from core.engine.served import LISTED, ServedClient, listed_adapter
from core.errors import TunelabError
from core.storage.runfolders import names_local_adapter, resolve_adapter

OnResult = Callable[[int, GenResult], None]
Emit = Callable[[str, int], None] | None  # None: no stream, the whole answer at once


class Engine(Protocol):
    numerics: str  # `ModelOptions.numerics()` of what it runs ("served" on a server): part of every cache key
    concurrent: bool  # calls may run from many threads at once (a server): a judge answers rows as they come

    def check(self, model: str) -> None: ...

    def fingerprint(self, model: str) -> str: ...

    def adapter(self, root: Path, model: str, ref: str) -> str: ...

    def cacheable(self, params: GenParams) -> bool: ...

    def batch(
        self,
        model: str,
        adapter: str | None,
        prompts: list[Prompt],
        params: GenParams,
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None: ...

    def generate(
        self, model: str, adapter: str | None, prompt: Prompt, params: GenParams, emit: Emit, cancel: threading.Event
    ) -> GenResult: ...


class LocalEngine(ABC):
    """What every local engine shares: weights fingerprinted from disk, adapters as folders, every greedy or
    seeded answer cacheable; `generate` as a batch of one where an engine has no stream of its own."""

    numerics = "float32@cpu"
    concurrent = False

    def check(self, model: str) -> None:  # noqa: B027 (a default: any local model runs)
        """Refuse, before anything runs, a model this engine cannot run (one line)."""

    def fingerprint(self, model: str) -> str:
        return fingerprint(resolve(model, allow_pickle=True))  # pickle weights are refused by the loader

    def adapter(self, root: Path, model: str, ref: str) -> str:
        return str(resolve_adapter(root, ref))

    def cacheable(self, params: GenParams) -> bool:
        return True

    @abstractmethod
    def batch(
        self,
        model: str,
        adapter: str | None,
        prompts: list[Prompt],
        params: GenParams,
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None: ...

    def generate(
        self, model: str, adapter: str | None, prompt: Prompt, params: GenParams, emit: Emit, cancel: threading.Event
    ) -> GenResult:
        results: list[GenResult] = []
        self.batch(model, adapter, [prompt], params, lambda _i, result: results.append(result), cancel)
        if not results:
            raise TunelabError("the generation was cancelled before it began")
        if emit is not None:
            emit(results[0].output, results[0].completion_tokens)
        return results[0]


class HostEngine(LocalEngine):
    """Local models in this process on one `ModelHost`: a base loads once (another model replaces it),
    adapters are hot-swapped onto it, exactly as in the model worker."""

    def __init__(self, options: ModelOptions, on_loaded: Callable[[], object] | None = None) -> None:
        from core.engine.host import ModelHost

        self.options, self.numerics = options, options.numerics()
        self.host = ModelHost()
        self.model: str | None = None
        self.on_loaded = on_loaded  # a model is in: its generation starts (a watchdog's clock)

    def _load(self, model: str) -> None:
        if model != self.model:
            self.host.load(replace(self.options, model=model))
            self.model = model
        if self.on_loaded is not None:
            self.on_loaded()

    def batch(
        self,
        model: str,
        adapter: str | None,
        prompts: list[Prompt],
        params: GenParams,
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None:
        self._load(model)
        typed = lambda i, result: on_result(i, GenResult.of(result))  # noqa: E731
        self.host.batch(prompts, params, adapter, on_result=typed, cancel=cancel)

    def generate(
        self, model: str, adapter: str | None, prompt: Prompt, params: GenParams, emit: Emit, cancel: threading.Event
    ) -> GenResult:
        self._load(model)
        quiet: Callable[[str, int], None] = lambda _text, _tokens: None  # noqa: E731
        return GenResult.of(self.host.generate(prompt, params, adapter, emit=emit or quiet, cancel=cancel))


class WorkerEngine(LocalEngine):
    """Local generation through the model worker (the TUI), on the model it has loaded."""

    def __init__(self, client: Any, model: str, numerics: str) -> None:
        self.client, self.model, self.numerics = client, model, numerics

    def check(self, model: str) -> None:
        if model != self.model:
            raise TunelabError(
                f"a local model runs on the loaded model ({self.model}); '{model}' is not it: load it first"
            )

    def batch(
        self,
        model: str,
        adapter: str | None,
        prompts: list[Prompt],
        params: GenParams,
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None:
        self.check(model)
        events: queue.Queue = queue.Queue()
        rid = self.client.batch([x.to_dict() for x in prompts], params.to_dict(), events.put, adapter=adapter)
        for event in self._events(events, rid, cancel):
            if isinstance(event, wire.Item):
                try:
                    on_result(event.index, event.result)
                except BaseException:  # a row refused (or a bug): the rest of the batch is not wanted
                    self.client.cancel(rid)
                    raise
            elif isinstance(event, wire.BatchDone):
                return

    def generate(
        self, model: str, adapter: str | None, prompt: Prompt, params: GenParams, emit: Emit, cancel: threading.Event
    ) -> GenResult:
        self.check(model)
        events: queue.Queue = queue.Queue()
        rid = self.client.generate(prompt.to_dict(), params.to_dict(), events.put, adapter=adapter)
        for event in self._events(events, rid, cancel):
            if isinstance(event, wire.Chunk) and emit is not None:
                emit(event.text, event.tokens)
            elif isinstance(event, wire.Done):
                return event.result
        raise TunelabError("model worker failed")  # the events end only with Done or an error

    def _events(self, events: queue.Queue, rid: str, cancel: threading.Event) -> Iterator[Any]:
        """The request's events as they come; a cancel is passed on once; an error ends them in one line."""
        asked = False
        while True:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if cancel.is_set() and not asked:
                    self.client.cancel(rid)
                    asked = True
                continue
            if isinstance(event, (wire.Error, wire.Crashed)):
                raise TunelabError(getattr(event, "message", "model worker failed"))
            yield event
            if isinstance(event, (wire.BatchDone, wire.Done)):
                return


class ServedEngine:
    """A served model (`core.engine.served`): `max_concurrency` requests in flight, results called back as
    each answer arrives; an adapter the server lists is asked for by name, a local one (an endpoint with
    `loads_lora`) is loaded into the server first. A sampled answer is never cached."""

    numerics = "served"
    concurrent = True

    def __init__(self) -> None:
        self.clients: dict[str, ServedClient] = {}
        self.lock = threading.Lock()

    def check(self, model: str) -> None:
        endpoint(model)  # an endpoint the config does not name, or a bad URL, is refused here

    def fingerprint(self, model: str) -> str:
        return endpoint(model).fingerprint

    def adapter(self, root: Path, model: str, ref: str) -> str:
        if names_local_adapter(root, ref):
            return str(resolve_adapter(root, ref))
        return listed_adapter(model, ref)

    def cacheable(self, params: GenParams) -> bool:
        return params.temperature == 0

    def _client(self, model: str, adapter: str | None) -> ServedClient:
        key = f"{model}\0{adapter or ''}"
        with self.lock:
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

    def generate(
        self, model: str, adapter: str | None, prompt: Prompt, params: GenParams, emit: Emit, cancel: threading.Event
    ) -> GenResult:
        client = self._client(model, adapter)
        return self._typed(client.complete(prompt, params, emit, cancel), params, client.notes)

    def batch(
        self,
        model: str,
        adapter: str | None,
        prompts: list[Prompt],
        params: GenParams,
        on_result: OnResult,
        cancel: threading.Event,
    ) -> None:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        client = self._client(model, adapter)

        def one(i: int) -> None:
            if not cancel.is_set():
                on_result(i, self._typed(client.complete(prompts[i], params, cancel=cancel), params, client.notes))

        with ThreadPoolExecutor(max_workers=client.point.max_concurrency, thread_name_prefix="served") as pool:
            futures = [pool.submit(one, i) for i in range(len(prompts))]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for future in futures:  # what has not started never will
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]

    def _typed(self, result: dict[str, Any], params: GenParams, notes: list[str]) -> GenResult:
        """The answer typed; a sampled one marked (never cached); what the server refused said as its note."""
        typed = GenResult.of(result)
        if not self.cacheable(params):
            typed.extra["sampled"] = True
        if notes and not typed.note:
            typed = replace(typed, note="; ".join(dict.fromkeys(notes)))
        return typed

    def close(self) -> None:
        with self.lock:
            for client in self.clients.values():
                client.close()
            self.clients.clear()


@dataclass(frozen=True)
class EngineKind:
    """A kind of engine: which model specs it claims, and how one is made."""

    name: str
    claims: Callable[[str], bool]
    make: Callable[[], Engine]


ENGINES: list[EngineKind] = [EngineKind("served", is_served, ServedEngine)]  # before the local engine


class Engines:
    """The engine of each model an eval, a judge or a generation names, picked once per model: the first
    kind in `ENGINES` that claims the spec, else `local` (in process or the worker)."""

    def __init__(self, local: Engine) -> None:
        self.local = local
        self.made: dict[str, Engine] = {}

    def __call__(self, model: str) -> Engine:
        return engine_for(model, self.local, self.made)

    def close(self) -> None:
        for engine in self.made.values():
            close = getattr(engine, "close", None)
            if close is not None:
                close()


def is_local(model: str) -> bool:
    """Whether `model` runs on a local engine (in process or the worker): no registered kind claims it."""
    return not any(kind.claims(model) for kind in ENGINES)


def engine_for(model: str, local: Engine, made: dict[str, Engine] | None = None) -> Engine:
    """The one place a model spec is told served (or any registered kind) from local."""
    for kind in ENGINES:
        if kind.claims(model):
            if made is None:
                return kind.make()
            if kind.name not in made:
                made[kind.name] = kind.make()
            return made[kind.name]
    return local
