"""The model host: one base model loaded once, LoRA adapters hot-swapped onto it.

The model worker serves requests from it and the headless commands (`gen`, `eval`, `compare`) use it
in their own process, so both run the same code: each adapter loads once, the base never reloads, and
batched work gets every core while streaming keeps one thread (restored afterwards).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from core.engine.options import ModelOptions
from core.engine.params import GenParams
from core.engine.prompt import Prompt, encode, render
from core.errors import TunelabError


class ModelHost:
    def __init__(self) -> None:
        self.loaded: Any = None  # core.engine.loading.LoadedModel
        self.adapters: dict[str, str] = {}  # adapter folder -> its name inside the PeftModel

    def load(self, options: ModelOptions) -> dict[str, Any]:
        """Load the base model (dropping the previous one and its adapters); returns its info."""
        from core.engine.loading import load

        self.loaded, self.adapters = None, {}
        self.loaded = load(options.model, **options.load_kwargs())
        info: dict[str, Any] = self.loaded.info()
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
            raise TunelabError(f"cannot load adapter {adapter}: {str(exc).strip().splitlines()[0][:300]}") from None
        self.loaded.model.eval()

    def render(self, prompt: Prompt) -> tuple[str, int]:
        """The exact string a prompt becomes for the loaded model, and its token count."""
        if self.loaded is None:
            raise TunelabError("no model loaded")
        text = render(self.loaded.tokenizer, prompt, self.loaded.source.spec)
        return text, len(encode(self.loaded.tokenizer, text))

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

        from core.engine.generation import generate_batch

        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            with self.using(adapter) as loaded:
                generate_batch(loaded, prompts, params, batch_size=batch_size, cancel=cancel, on_result=on_result)
        finally:
            torch.set_num_threads(threads)
