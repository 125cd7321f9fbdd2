"""The model host: one base model loaded once, LoRA adapters hot-swapped onto it.

The model worker serves requests from it and the headless commands (`gen`, `eval`, `compare`) use it
in their own process, so both run the same code: each adapter loads once, the base never reloads, and
batched work gets every core while streaming keeps one thread (restored afterwards).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt, context_length, fit, fold_note, render
from core.engine.protocol import ModelInfo
from core.errors import TunelabError
from core.faults import fault_int


def adapter_failure(adapter: str | Path, model: str, exc: BaseException) -> TunelabError:
    """One line for an adapter that would not load: for one trained on another base, both bases and the
    first tensor that does not fit (peft's own message is a state_dict dump of dozens of lines)."""
    text = str(exc).strip()
    mismatch = re.search(r"size mismatch for ([\w.]+): copying a param with shape (\S+ \S+?),? from checkpoint", text)
    if mismatch or "Error(s) in loading state_dict" in text or "Target modules" in text:
        try:
            declared = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
            base = declared.get("base_model_name_or_path") or "an unnamed base"
        except (OSError, ValueError, AttributeError):
            base = "another base"
        where = f"; first mismatch: {mismatch.group(1)}" if mismatch else ""
        return TunelabError(f"adapter {adapter} was trained on {base}, not on the loaded model {model}{where}")
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    return TunelabError(f"cannot load adapter {adapter}: {first}")


class ModelHost:
    def __init__(self) -> None:
        self.loaded: Any = None  # core.engine.loading.LoadedModel
        self.adapters: dict[str, str] = {}  # adapter folder -> its name inside the PeftModel

    def load(self, options: ModelOptions) -> ModelInfo:
        """Load the base model (dropping the previous one and its adapters); returns its info."""
        from core.engine.loading import load

        self.loaded, self.adapters = None, {}
        self.loaded = load(options.model, **options.load_kwargs())
        info: ModelInfo = self.loaded.info()
        return info

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[Any]:
        """The loaded model with `adapter` (a PEFT folder) active, or with every adapter disabled."""
        if self.loaded is None:
            raise TunelabError("no model loaded")
        if adapter is None:
            off = self.loaded.model.disable_adapter() if self.adapters else contextlib.nullcontext()
            with off:
                yield self.loaded
            return
        name = self.adapters.get(adapter)
        if name is None:
            name = f"a{len(self.adapters)}"
            self._attach(adapter, name)
            self.adapters[adapter] = name
        self.loaded.model.set_adapter(name)
        yield self.loaded

    def _attach(self, adapter: str, name: str) -> None:
        from peft import PeftModel

        try:
            if self.adapters:
                self.loaded.model.load_adapter(adapter, adapter_name=name)
            else:
                self.loaded.model = PeftModel.from_pretrained(self.loaded.model, adapter, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise adapter_failure(adapter, self.loaded.source.spec, exc) from None
        self.loaded.model.eval()

    def render(self, prompt: Prompt) -> tuple[str, int, str]:
        """The exact string a prompt becomes for the loaded model, its token count, and what to know about it."""
        if self.loaded is None:
            raise TunelabError("no model loaded")
        tokenizer = self.loaded.tokenizer
        text = render(tokenizer, prompt, self.loaded.source.spec)
        limit = context_length(self.loaded.model, tokenizer)
        ids, over = fit(tokenizer, text, limit, side="right")
        return text, len(ids) + over, fold_note(tokenizer, prompt)  # over the context: shown as one more than it holds

    def generate(
        self,
        prompt: Prompt,
        params: GenParams,
        adapter: str | None,
        *,
        emit: Callable[[str, int], None],
        cancel: threading.Event,
        on_rendered: Callable[[str, int], None] | None = None,
    ) -> dict[str, Any]:
        from core.engine.generation import generate

        if (stuck := fault_int("worker_sleep_in_generate")) is not None:
            time.sleep(stuck)  # a library stuck in generate: a watchdog is what ends it
        with self.using(adapter) as loaded:
            result: dict[str, Any] = generate(loaded, prompt, params, emit=emit, cancel=cancel, on_rendered=on_rendered)
        return result

    def batch(
        self,
        prompts: list[Prompt],
        params: GenParams,
        adapter: str | None,
        *,
        on_result: Callable[[int, dict[str, Any]], None],
        cancel: threading.Event,
        batch_size: int = 16,
    ) -> None:
        """Many prompts at once (evals): all cores for the batch, the previous thread count after."""
        import torch

        from core.engine.cores import usable_cores
        from core.engine.generation import generate_batch

        if (stuck := fault_int("worker_sleep_in_generate")) is not None:
            time.sleep(stuck)  # as in `generate`
        threads = torch.get_num_threads()
        torch.set_num_threads(usable_cores())
        try:
            with self.using(adapter) as loaded:
                generate_batch(loaded, prompts, params, batch_size=batch_size, cancel=cancel, on_result=on_result)
        finally:
            torch.set_num_threads(threads)
