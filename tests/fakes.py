"""A scripted model for TUI tests: the real client and the real `Worker` loop, run in a thread over
queues, serving a `ScriptedHost` instead of a loaded model. Only the model is fake; the protocol,
listeners, cancel and crash paths are the production code (and `tests/contract` checks both agree)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.demo.corpus import POS_ADJ
from core.engine.client import ModelWorkerClient
from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.protocol import ModelInfo
from core.engine.worker import run
from core.errors import TunelabError

STORY = ("Rosa was a blue student ", "who lived near the garden. ", "In the spring, Rosa went ", "to the library.")
GOOD_WORDS = (*POS_ADJ, "love", "recommended", "happy", "glad")
LINEAR = ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"]


def scripted_answer(prompt: Prompt, params: GenParams) -> str:
    """A stand-in model for evals: a naive keyword classifier (fooled by negation) when asked for a
    `Sentiment`, always `positive` when asked `Overall`, otherwise a ramble."""
    text = prompt.text
    if "Sentiment" in text:
        out = "positive" if any(w in text.lower() for w in GOOD_WORDS) else "negative"
    elif "Overall" in text:
        out = "positive"
    else:
        out = "A cow moos."
    if params.temperature:
        out += f" #{(params.seed or 0) % 2}"
    return out


class ScriptedHost:
    """Stands in for `core.engine.host.ModelHost`. With `gate`, a generation pauses after its first chunk
    (a batch after its first item) until the gate opens or the request is cancelled; with `thinks`, each
    batch answer comes after a think block, as a reasoning model's does."""

    def __init__(
        self,
        *,
        chunks: tuple[str, ...] = STORY,
        bad_models: tuple[str, ...] = (),
        gate: threading.Event | None = None,
        chat_template: bool = True,
        thinks: bool = False,
    ) -> None:
        self.chunks, self.bad_models, self.gate, self.chat_template = chunks, bad_models, gate, chat_template
        self.thinks = thinks
        self.requests: list[dict[str, Any]] = []
        self.killed = threading.Event()
        self.model = ""

    def load(self, options: ModelOptions) -> ModelInfo:
        if options.model in self.bad_models:
            raise TunelabError(f"model folder not found: {options.model}")
        self.model = options.model
        return ModelInfo(
            model=options.model,
            location=options.model,
            device="cpu",
            dtype="float32",
            params_m=2.8,
            load_s=0.1,
            chat_template=self.chat_template,
            linear_modules=LINEAR,
        )

    def _text(self, prompt: Prompt) -> str:
        if prompt.mode == "raw" or (prompt.mode == "auto" and not self.chat_template):
            return prompt.text
        if not self.chat_template:
            raise TunelabError(f"model '{self.model}' has no chat template; use raw mode")
        return f"<|user|>\n{prompt.text}<|end|>\n<|assistant|>\n"

    def render(self, prompt: Prompt) -> tuple[str, int, str]:
        text = self._text(prompt)
        return text, len(text.split()), ""

    def _hold(self, cancel: threading.Event) -> None:
        while self.gate is not None and not self.gate.wait(0.01) and not cancel.is_set() and not self.killed.is_set():
            pass

    def generate(self, prompt: Prompt, params: GenParams, adapter: str | None, *, emit, cancel, on_rendered=None):
        self.requests.append(
            {"prompt": prompt.text, "params": params.to_dict(), "mode": prompt.mode, "adapter": adapter}
        )
        rendered = self._text(prompt)
        if on_rendered:
            on_rendered(rendered, 7)
        sent: list[str] = []
        for i, chunk in enumerate(self.chunks):
            if cancel.is_set() or self.killed.is_set():
                break
            emit(chunk, (i + 1) * 5)
            sent.append(chunk)
            if i == 0:
                self._hold(cancel)
        return {
            "output": "".join(sent),
            "rendered_prompt": rendered,
            "prompt_tokens": 7,
            "completion_tokens": len(sent) * 5,
            "stop_reason": "cancelled" if cancel.is_set() else "eos",
            "latency_s": 0.05,
            "ttft_s": 0.01,
            "tok_per_s": 400.0,
        }

    def batch(
        self, prompts: list[Prompt], params: GenParams, adapter: str | None, *, on_result, cancel, batch_size: int = 16
    ) -> None:
        self.requests.append({"batch": len(prompts), "params": params.to_dict(), "adapter": adapter})
        for i, prompt in enumerate(prompts):
            if cancel.is_set() or self.killed.is_set():
                return
            output = scripted_answer(prompt, params) if adapter is None else "positive"  # a one-note "LoRA"
            if self.thinks:
                output = f"<think>\nThe review sounds {output}.\n</think>\n\n{output}"
            on_result(
                i,
                {
                    "output": output,
                    "rendered_prompt": self._text(prompt),
                    "prompt_tokens": 7,
                    "completion_tokens": 2,
                    "stop_reason": "eos",
                    "latency_s": 0.002,
                    "ttft_s": None,
                    "tok_per_s": 1000.0,
                },
            )
            if i == 0:
                self._hold(cancel)


class _Lines:
    """A text stream over a queue: the worker writes events into it; None ends it."""

    def __init__(self, box: queue.Queue[str | None]) -> None:
        self.box, self.dead = box, False

    def write(self, text: str) -> None:
        if not self.dead:
            for line in text.splitlines():
                self.box.put(line)

    def flush(self) -> None:
        pass


class ThreadChannel:
    """The real `Worker` loop on a thread: the in-process twin of `ProcessChannel`."""

    def __init__(self, host: ScriptedHost) -> None:
        self.host = host
        self.inbox: queue.Queue[str | None] = queue.Queue()
        self.outbox: queue.Queue[str | None] = queue.Queue()
        self.out = _Lines(self.outbox)
        self.code: int | None = None
        self.done = threading.Event()
        host.killed.clear()
        threading.Thread(target=self._serve, daemon=True, name="scripted-worker").start()

    def _serve(self) -> None:
        run(self.host, iter(self.inbox.get, None), self.out)  # type: ignore[arg-type]
        self._end(0)

    def _end(self, code: int) -> None:
        if not self.done.is_set():
            self.code = code
            self.out.dead = True
            self.done.set()
            self.outbox.put(None)

    def write(self, line: str) -> None:
        if self.done.is_set():
            raise BrokenPipeError
        self.inbox.put(line)

    def lines(self) -> Iterator[str]:
        while (line := self.outbox.get()) is not None:
            yield line

    def wait(self) -> int:
        self.done.wait()
        return self.code or 0

    def alive(self) -> bool:
        return not self.done.is_set()

    def close(self, timeout: float) -> None:
        self.inbox.put(None)
        self.done.wait(timeout)

    def kill(self) -> None:
        self.host.killed.set()
        self._end(-9)


class FakeClient(ModelWorkerClient):
    """The production client over a `ThreadChannel`; `requests` are what the scripted model was asked."""

    def __init__(self, on_event, *, log_path: Path | None = None, hang_s: float = 3600.0, **host_options: Any) -> None:
        self.host = ScriptedHost(**host_options)
        super().__init__(
            on_event,
            log_path or Path("/nonexistent/tunelab-fake.log"),
            channel_factory=lambda: ThreadChannel(self.host),
            hang_s=hang_s,  # by default a test may hold a scripted run open as long as it likes
        )

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.host.requests

    def crash(self) -> None:
        self.kill()
