"""One set of scenarios, run against the fake client the TUI tests use and the real model worker: both
must give the same events, in the same order, with the same fields (`core.engine.protocol`)."""

from __future__ import annotations

import queue
import threading
from dataclasses import fields
from pathlib import Path

import pytest

from core.engine import protocol as p
from core.engine.client import ModelWorkerClient
from core.engine.options import ModelOptions
from core.history.records import RESULT_FIELDS
from tests.fakes import FakeClient


class Events:
    """A listener that records typed events and waits for one of a kind."""

    def __init__(self) -> None:
        self.q: queue.Queue[p.Event] = queue.Queue()
        self.seen: list[p.Event] = []

    def __call__(self, event: p.Event) -> None:
        assert isinstance(event, p.Event) and type(event) in p.EVENTS.values()
        self.q.put(event)

    def until(self, *kinds: type[p.Event], timeout: float = 120) -> p.Event:
        while True:
            event = self.q.get(timeout=timeout)
            self.seen.append(event)
            if isinstance(event, kinds):
                return event

    def trace(self) -> list[str]:
        """Event tags with runs of chunks or items folded into one, so timing does not matter."""
        out: list[str] = []
        for event in self.seen:
            tag = event.TAG + ("+" if isinstance(event, (p.Chunk, p.Item)) else "")
            if not out or out[-1] != tag or not tag.endswith("+"):
                out.append(tag)
        return out


def make_adapter(folder) -> str:
    """A random LoRA (B not zero, so it changes outputs) saved as a plain PEFT folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core import demo

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(demo.MODEL_DIR),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    model.save_pretrained(folder)
    return str(folder)


def loaded(kind: str, log: Path) -> tuple[ModelWorkerClient, Events]:
    """A client of `kind` with the demo model loaded: (client, its global listener, which has seen Ready).
    The fake holds a request after its first chunk or item until cancelled; the real worker is asked for far
    more tokens than it needs."""
    events = Events()
    if kind == "fake":
        made: ModelWorkerClient = FakeClient(events, gate=threading.Event())
    else:
        made = ModelWorkerClient(events, log)
    made.load(ModelOptions("demo"))
    events.until(p.Ready)
    return made, events


@pytest.fixture(scope="module")
def real_worker(tmp_path_factory):
    """One real worker for the scenarios that leave it idle and alive: each start costs seconds of imports."""
    made, events = loaded("real", tmp_path_factory.mktemp("worker") / "worker.log")
    yield made, events
    made.close()


KINDS = ["fake", pytest.param("real", marks=pytest.mark.slow)]


@pytest.fixture(params=KINDS)
def client(request, tmp_path):
    """The shared real worker, or a fresh fake."""
    if request.param == "real":
        yield request.getfixturevalue("real_worker")
        return
    made, events = loaded("fake", tmp_path / "worker.log")
    yield made, events
    made.close()


@pytest.fixture(params=KINDS)
def own_client(request, tmp_path):
    """A client of its own, for a scenario that kills it."""
    made, events = loaded(request.param, tmp_path / "worker.log")
    yield made, events
    made.close()


LONG = {"max_new_tokens": 2000}
RAW = {"text": "Anna was a", "system": "", "mode": "raw"}


def test_load_then_ready(client):
    made, events = client
    ready = next(e for e in events.seen if isinstance(e, p.Ready))
    assert events.trace() == ["loading", "ready"] and events.q.empty()
    assert isinstance(ready.info, p.ModelInfo) and ready.info.device == "cpu" and ready.info.linear_modules
    assert ready.info.params_m is not None and ready.info.load_s >= 0


def test_stream_cancel_and_crash_mid_request(own_client):
    made, events = own_client
    own = Events()
    rid = made.generate(RAW, LONG, own)
    own.until(p.Chunk)
    made.cancel(rid)
    done = own.until(p.Done)
    assert own.trace() == ["started", "chunk+", "done"] and done.id == rid
    assert done.result.stop_reason == "cancelled" and done.result.completion_tokens < 2000
    assert set(done.result.to_dict()) >= set(RESULT_FIELDS)  # what a history record keeps
    chunks = "".join(e.text for e in own.seen if isinstance(e, p.Chunk))
    assert chunks == done.result.output

    crashed_request = Events()
    made.generate(RAW, LONG, crashed_request)
    crashed_request.until(p.Chunk)
    made.kill()
    crash = crashed_request.until(p.Crashed)
    assert "model worker exited" in crash.message
    assert isinstance(events.until(p.Crashed), p.Crashed)  # the app hears of it too
    assert not made.alive

    again = Events()
    rid = made.generate(RAW, LONG, again)  # restarts the worker and reloads the model first
    again.until(p.Chunk)
    made.cancel(rid)
    assert again.until(p.Done).result.stop_reason == "cancelled"
    events.until(p.Ready)
    assert events.trace()[-3:] == ["crashed", "loading", "ready"]


def test_batch_cancel_and_render(client):
    made, events = client
    own = Events()
    prompts = [{**RAW, "text": f"Anna was a {n}"} for n in range(6)]
    rid = made.batch(prompts, {"max_new_tokens": 400}, own, batch_size=1)
    own.until(p.Item)
    made.cancel(rid)
    done = own.until(p.BatchDone)
    assert own.trace() == ["item+", "batch_done"] and done.cancelled and done.id == rid
    assert len([e for e in own.seen if isinstance(e, p.Item)]) < len(prompts)

    rendered = Events()
    made.render({"text": "hi", "system": "", "mode": "chat"}, rendered)
    shown = rendered.until(p.Rendered)
    assert shown.text.startswith("<|user|>\nhi") and shown.tokens > 0 and rendered.trace() == ["rendered"]
    assert events.trace() == ["loading", "ready"] and events.q.empty()  # nothing leaked to the global listener


def test_bad_request_is_an_error_event_and_the_worker_lives_on(client):
    made, events = client
    own = Events()
    made.generate(RAW, {"top_p": 7}, own)
    error = own.until(p.Error)
    assert "top_p" in error.message and error.op == "generate" and made.alive
    assert [f.name for f in fields(error)] == ["message", "id", "op"]


@pytest.mark.slow
def test_adapters_hot_swap_on_the_real_worker(real_worker, tmp_path):
    """The real model: an adapter changes the output, the base comes back exactly, a bad folder is one line."""
    made, _ = real_worker
    adapter = make_adapter(tmp_path / "a1")

    def run(adapter_path):
        own = Events()
        made.generate(RAW, {"max_new_tokens": 12}, own, adapter=adapter_path)
        return own.until(p.Done).result.output

    base = run(None)
    with_adapter = run(adapter)
    assert with_adapter != base and run(None) == base and run(adapter) == with_adapter
    own = Events()
    made.generate(RAW, {"max_new_tokens": 2}, own, adapter=str(tmp_path))
    assert "cannot load adapter" in own.until(p.Error).message and made.alive


def test_wire_round_trip_for_every_message():
    for cls in [*p.REQUESTS.values(), *p.EVENTS.values()]:
        values = {f.name: {"str": "x", "int": 1, "bool": True}.get(str(f.type).split(" ")[0], {}) for f in fields(cls)}
        values.update({name: kind("demo", "cpu", "float32") for name, kind in cls.NESTED.items()})
        message = cls(**values)
        kinds = p.REQUESTS if issubclass(cls, p.Request) else p.EVENTS
        assert p.from_wire(p.to_wire(message), kinds) == message
    with pytest.raises(p.ProtocolError):
        p.from_wire('{"event": "nope"}', p.EVENTS)


def test_every_event_type_has_its_app_message():
    """The app maps events to messages by the protocol's tags (the protocol module loads after the first frame);
    a batch's events, which only reach the app once their batch's listener is gone, map to nothing."""
    from tui.messages import STALE_ONLY, WORKER_MESSAGES, worker_message

    answered = set(p.EVENTS) - {p.Alive.TAG}  # the heartbeat is the client's own (its watchdog's)
    assert set(WORKER_MESSAGES) | STALE_ONLY == answered and not set(WORKER_MESSAGES) & STALE_ONLY
    info = p.ModelInfo("demo", "cpu", "float32")
    ready = worker_message(p.Ready(info), "g1")
    assert type(ready).__name__ == "ModelReady" and ready.event.info == info and ready.token == "g1"
    assert worker_message(p.BatchDone("b1")) is None


@pytest.mark.parametrize("make", [lambda r: p.Done("r1", r), lambda r: p.Item("b1", 3, r)], ids=["done", "item"])
def test_a_result_crosses_the_wire_typed_and_whole(make):
    """`Done.result` and a batch `Item.result` are a `GenResult` on both ends; what else a backend reported
    survives in `extra`."""
    reported = {"output": "hi", "stop_reason": "eos", "completion_tokens": 2, "latency_s": 0.5, "tok_per_s": 4.0,
                "prompt_tokens": 7, "finish_reason": "stop", "served_model": "m"}  # fmt: skip
    sent = make(p.GenResult.of(reported))
    got = p.from_wire(p.to_wire(sent), p.EVENTS)
    assert got == sent and got.result.completion_tokens == 2 and got.result.to_dict() == reported
