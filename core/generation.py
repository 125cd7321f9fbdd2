"""Streaming generation (torch side): stop strings, cancellation, and chunks coalesced by time.

Chunks leave at most every `interval` seconds as `emit(text, tokens_so_far)`, so a consumer (the TUI)
does one update per chunk, never one per token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import TunelabError
from core.loading import LoadedModel
from core.params import GenParams

CHUNK_INTERVAL_S = 0.05


@dataclass
class Prompt:
    """What to send: the user's text, optional system prompt, and raw/chat/auto mode."""

    text: str
    system: str = ""
    mode: str = "auto"  # auto: chat when the tokenizer has a template


def render(loaded: LoadedModel, prompt: Prompt) -> str:
    """The exact string the model sees."""
    if prompt.mode not in {"auto", "chat", "raw"}:
        raise TunelabError(f"mode must be auto, chat or raw, got '{prompt.mode}'")
    chat = prompt.mode == "chat" or (prompt.mode == "auto" and loaded.has_chat_template)
    if not chat:
        return f"{prompt.system}\n\n{prompt.text}" if prompt.system else prompt.text
    if not loaded.has_chat_template:
        raise TunelabError(f"model '{loaded.source.spec}' has no chat template; use raw mode")
    messages = ([{"role": "system", "content": prompt.system}] if prompt.system else [])
    messages.append({"role": "user", "content": prompt.text})
    return loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class _Stream:
    """Receives token ids from `generate`, decodes them, watches stop strings, emits coalesced text."""

    def __init__(self, tokenizer, stop: tuple[str, ...], emit: Callable[[str, int], None], interval: float):
        self.tokenizer, self.stop, self.emit, self.interval = tokenizer, stop, emit, interval
        self.holdback = max((len(s) for s in stop), default=1) - 1
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.last_emit = time.monotonic()
        self.first_token_at: float | None = None
        self.stopped_by: str | None = None
        self.prompt_seen = False

    # transformers' streamer protocol
    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompt ids
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character is still incomplete
            return
        self.text = text
        for s in self.stop:
            cut = text.find(s)
            if cut != -1:
                self.text, self.stopped_by = text[:cut], s
                break
        if time.monotonic() - self.last_emit >= self.interval:
            self._flush(final=self.stopped_by is not None)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        upto = len(self.text) if final else max(self.sent, len(self.text) - self.holdback)
        if upto > self.sent:
            self.emit(self.text[self.sent:upto], len(self.ids))
            self.sent = upto
        self.last_emit = time.monotonic()


def generate(loaded: LoadedModel, prompt: Prompt, params: GenParams, *,
             emit: Callable[[str, int], None], cancel: threading.Event | None = None,
             on_rendered: Callable[[str, int], None] | None = None,
             interval: float = CHUNK_INTERVAL_S) -> dict[str, Any]:
    """Generate for one prompt, streaming text through `emit`; returns output and timing stats."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    rendered = render(loaded, prompt)
    tok = loaded.tokenizer
    enc = tok(rendered, return_tensors="pt", add_special_tokens=not _template_has_bos(tok, rendered))
    input_ids = enc["input_ids"].to(loaded.device)
    prompt_tokens = int(input_ids.shape[1])
    if on_rendered:
        on_rendered(rendered, prompt_tokens)
    cancel = cancel or threading.Event()
    stream = _Stream(tok, params.stop, emit, interval)

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = cancel.is_set() or stream.stopped_by is not None
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": not params.greedy,
                              "pad_token_id": tok.pad_token_id}
    if params.greedy:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    start = time.monotonic()
    with torch.inference_mode():
        loaded.model.generate(input_ids, attention_mask=enc["attention_mask"].to(loaded.device),
                              streamer=stream, stopping_criteria=StoppingCriteriaList([_Halt()]), **kwargs)
    latency = time.monotonic() - start
    completion_tokens = len(stream.ids)
    if cancel.is_set():
        reason = "cancelled"
    elif stream.stopped_by is not None:
        reason = "stop"
    elif completion_tokens >= params.max_new_tokens:
        reason = "length"
    else:
        reason = "eos"
    ttft = (stream.first_token_at - start) if stream.first_token_at else latency
    return {"output": stream.text, "rendered_prompt": rendered, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "stop_reason": reason,
            "latency_s": round(latency, 4), "ttft_s": round(ttft, 4),
            "tok_per_s": round(completion_tokens / latency, 2) if latency > 0 else 0.0}


def _template_has_bos(tokenizer, rendered: str) -> bool:
    bos = tokenizer.bos_token
    return bool(bos) and rendered.startswith(bos)
