"""A scripted stand-in for the model worker client: same interface and events, no subprocess."""

from __future__ import annotations

import threading
from typing import Any, Callable

STORY = ("Rosa was a blue student ", "who lived near the garden. ", "In the spring, Rosa went ",
         "to the library.")
GOOD_WORDS = ("great", "excellent", "wonderful", "lovely", "perfect", "solid", "amazing", "fantastic",
              "comfortable", "reliable", "beautiful", "sturdy", "love", "recommended", "happy", "glad")


def scripted_answer(prompt: dict[str, Any], params: dict[str, Any]) -> str:
    """A stand-in model for evals: a naive keyword classifier (fooled by negation) when asked for a
    `Sentiment`, always `positive` when asked `Overall`, otherwise a ramble."""
    text = prompt["text"]
    if "Sentiment" in text:
        out = "positive" if any(w in text.lower() for w in GOOD_WORDS) else "negative"
    elif "Overall" in text:
        out = "positive"
    else:
        out = "A cow moos."
    if params.get("temperature"):
        out += f" #{params['seed'] % 2}"
    return out


class FakeClient:
    """Streams `chunks` from a thread. With `gate`, it pauses after the first chunk until the gate
    opens or the request is cancelled, so tests can act mid-stream."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None], *, chunks=STORY,
                 bad_models: tuple[str, ...] = (), gate: threading.Event | None = None,
                 chat_template: bool = True) -> None:
        self.on_event, self.chunks, self.bad_models, self.gate = on_event, chunks, bad_models, gate
        self.chat_template = chat_template
        self.requests: list[dict[str, Any]] = []
        self.cancelled: set[str] = set()
        self.closed = False

    def load(self, model: str, **options: Any) -> None:
        if model in self.bad_models:
            self.on_event({"event": "error", "op": "load", "message": f"model folder not found: {model}"})
        else:
            self.on_event({"event": "ready", "info": {"model": model, "device": "cpu", "dtype": "float32",
                                                      "params_m": 2.8, "load_s": 0.1, "chat_template": True,
                                                      "linear_modules": ["down_proj", "gate_proj", "k_proj", "lm_head",
                                                                         "o_proj", "q_proj", "up_proj", "v_proj"]}})

    def generate(self, prompt: str, params: dict[str, Any], *, system: str = "", mode: str = "auto",
                 adapter: str | None = None) -> str:
        rid = f"fake-{len(self.requests) + 1}"
        self.requests.append({"id": rid, "prompt": prompt, "params": params, "mode": mode, "adapter": adapter})
        if mode == "chat" and not self.chat_template:
            self.on_event({"event": "error", "id": rid, "op": "generate",
                           "message": "model 'demo' has no chat template; use raw mode"})
            return rid
        threading.Thread(target=self._stream, args=(rid, prompt), daemon=True).start()
        return rid

    def _stream(self, rid: str, prompt: str) -> None:
        emit = self.on_event
        rendered = f"<|user|>\n{prompt}<|end|>\n<|assistant|>\n"
        emit({"event": "started", "id": rid, "rendered_prompt": rendered, "prompt_tokens": 7})
        sent = []
        for i, chunk in enumerate(self.chunks):
            if rid in self.cancelled:
                break
            emit({"event": "chunk", "id": rid, "text": chunk, "tokens": (i + 1) * 5})
            sent.append(chunk)
            if i == 0 and self.gate is not None:
                while not self.gate.wait(0.01) and rid not in self.cancelled:
                    pass
        reason = "cancelled" if rid in self.cancelled else "eos"
        emit({"event": "done", "id": rid, "result": {
            "output": "".join(sent), "rendered_prompt": rendered, "prompt_tokens": 7, "completion_tokens": len(sent) * 5,
            "stop_reason": reason, "latency_s": 0.05, "ttft_s": 0.01, "tok_per_s": 400.0}})

    def batch(self, prompts: list[dict[str, Any]], params: dict[str, Any], listener, batch_size: int = 16,
              adapter: str | None = None) -> str:
        rid = f"fake-batch-{len(self.requests) + 1}"
        self.requests.append({"id": rid, "batch": len(prompts), "params": params, "adapter": adapter})

        def run() -> None:
            for i, p in enumerate(prompts):
                output = scripted_answer(p, params) if adapter is None else "positive"  # a one-note "LoRA"
                listener({"event": "item", "id": rid, "index": i, "result": {
                    "output": output, "latency_s": 0.002, "completion_tokens": 2}})
            listener({"event": "batch_done", "id": rid, "cancelled": False})
        threading.Thread(target=run, daemon=True).start()
        return rid

    def render(self, prompt: dict[str, Any], listener) -> str:
        text = f"<|user|>\n{prompt['text']}<|end|>\n<|assistant|>\n" if prompt["mode"] != "raw" else prompt["text"]
        listener({"event": "rendered", "id": "fake-render", "text": text, "tokens": len(text.split())})
        return "fake-render"

    def crash(self) -> None:
        self.on_event({"event": "crashed", "message": "model worker exited (code -9): killed"})

    def cancel(self, rid: str) -> None:
        self.cancelled.add(rid)

    def close(self) -> None:
        self.closed = True
