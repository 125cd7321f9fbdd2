"""The model worker child process through its client: streaming, cancel, crash and restart."""

import queue

import pytest

from core.engine.client import ModelWorkerClient


class Events:
    def __init__(self):
        self.q: queue.Queue = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def until(self, kind, timeout=60):
        seen = []
        while True:
            event = self.q.get(timeout=timeout)
            seen.append(event)
            if event["event"] == kind:
                return event, seen


@pytest.fixture
def worker(tmp_path):
    events = Events()
    client = ModelWorkerClient(events, tmp_path / "worker.log")
    yield client, events
    client.close()


@pytest.mark.slow
def test_stream_then_cancel_then_crash_and_restart(worker):
    client, events = worker
    client.load("demo")
    ready, _ = events.until("ready")
    assert ready["info"]["model"] == "demo" and ready["info"]["device"] == "cpu"

    rid = client.generate("Tell me a short story.", {"max_new_tokens": 40})
    done, seen = events.until("done")
    assert done["id"] == rid
    started = next(e for e in seen if e["event"] == "started")
    assert started["rendered_prompt"].startswith("<|user|>\nTell me a short story.")
    chunks = [e["text"] for e in seen if e["event"] == "chunk"]
    assert "".join(chunks) == done["result"]["output"] != ""

    rid = client.generate("Anna was a", {"max_new_tokens": 2000}, mode="raw")
    events.until("chunk")
    client.cancel(rid)
    done, _ = events.until("done")
    assert done["result"]["stop_reason"] == "cancelled"
    assert done["result"]["completion_tokens"] < 2000

    client.proc.kill()
    crashed, _ = events.until("crashed")
    assert "model worker exited" in crashed["message"]
    assert not client.alive

    rid = client.generate("Anna was a", {"max_new_tokens": 5}, mode="raw")  # restarts and reloads
    events.until("ready")
    done, _ = events.until("done")
    assert done["id"] == rid and done["result"]["completion_tokens"] == 5


@pytest.mark.slow
def test_load_and_request_errors_are_events_and_the_worker_lives_on(worker, tmp_path):
    client, events = worker
    client.load(str(tmp_path / "missing"))
    err, _ = events.until("error")
    assert err["op"] == "load" and err["message"].startswith("model folder not found")
    client.load("demo")
    events.until("ready")
    rid = client.generate("hi", {"top_p": 7})
    err, _ = events.until("error")
    assert err["id"] == rid and "top_p" in err["message"]
    assert client.alive


@pytest.mark.slow
def test_render_and_batch_go_to_their_own_listeners(worker):
    client, events = worker
    client.load("demo")
    events.until("ready")
    own = Events()
    client.render({"text": "hi", "system": "", "mode": "auto"}, own)
    rendered, _ = own.until("rendered")
    assert rendered["text"] == "<|user|>\nhi<|end|>\n<|assistant|>\n" and rendered["tokens"] > 3
    prompts = [{"text": t, "mode": "raw"} for t in ("Anna was a", "What color is the sky?", "Ben")]
    client.batch(prompts, {"max_new_tokens": 6}, own)
    done, seen = own.until("batch_done")
    items = sorted((e["index"], e["result"]) for e in seen if e["event"] == "item")
    assert [i for i, _ in items] == [0, 1, 2] and all(r["output"] for _, r in items)
    assert not done["cancelled"] and events.q.empty()  # nothing leaked to the global handler


def make_adapter(folder, seed):
    """A random LoRA (B not zero, so it changes outputs) saved as a plain PEFT folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core import demo

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(demo.MODEL_DIR),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    model.save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
def test_adapters_hot_swap_without_touching_the_base(worker, tmp_path):
    client, events = worker
    first, second = make_adapter(tmp_path / "a1", 1), make_adapter(tmp_path / "a2", 2)
    client.load("demo")
    events.until("ready")

    def run(adapter):
        client.generate("Anna was a", {"max_new_tokens": 12}, mode="raw", adapter=adapter)
        return events.until("done")[0]["result"]["output"]

    base = run(None)
    with_first, with_second = run(first), run(second)
    assert with_first != base and with_second != base and with_first != with_second
    assert run(None) == base and run(first) == with_first  # swapping back is exact
    client.generate("x", {"max_new_tokens": 2}, adapter=str(tmp_path))
    err, _ = events.until("error")
    assert "cannot load adapter" in err["message"] and client.alive
