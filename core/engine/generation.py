"""Streaming generation (torch side): stop strings, cancellation, and chunks coalesced by time.

Chunks leave at most every `interval` seconds as `emit(text, tokens_so_far)`, so a consumer (the TUI)
does one update per chunk, never one per token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.engine.kv_room import reserve
from core.engine.loading import LoadedModel
from core.engine.params import GenParams
from core.engine.prompt import Prompt, fit, fold_note, prompt_room, render, stop_ids
from core.errors import TunelabError

CHUNK_INTERVAL_S = 0.05


class _Stream:
    """Receives token ids from `generate`, decodes them, watches stop strings, emits coalesced text.

    Decoding is incremental (only the ids since the last read, with a few before them as context, as vLLM's
    detokenizer does), so a long output costs linear time; without stop strings the text is read only when
    a chunk is due, not per token. The end checks the text against one full decode."""

    def __init__(self, tokenizer, stop: tuple[str, ...], emit: Callable[[str, int], None], interval: float):
        self.tokenizer, self.stop, self.emit, self.interval = tokenizer, stop, emit, interval
        self.longest_stop = max((len(s) for s in stop), default=0)
        self.holdback = max(self.longest_stop, 1) - 1
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0  # ids[prefix:read] is context, ids[read:] not yet text
        self.text = ""
        self.sent = 0
        self.last_emit = time.monotonic()
        self.first_token_at: float | None = None
        self.stopped_by: str | None = None
        self.prompt_seen = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # transformers' streamer protocol
    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompt ids
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.ids.extend(value.reshape(-1).tolist())
        if self.stopped_by is not None:
            return
        due = time.monotonic() - self.last_emit >= self.interval
        if self.stop or due:  # without stop strings, text is only needed when a chunk leaves
            self._read()
        if due:
            self._flush(final=self.stopped_by is not None)

    def _read(self) -> None:
        """Decode the ids not yet read into text (several at once when they came between two chunks)."""
        context = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        if len(text) <= len(context) or text.endswith("\ufffd"):  # nothing new yet, or half a character
            return
        searched_from = max(0, len(self.text) - self.longest_stop + 1)
        self.text += text[len(context) :]
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        self._cut_at_stop(searched_from)

    def _cut_at_stop(self, start: int = 0) -> None:
        for s in self.stop:
            cut = self.text.find(s, start)
            if cut != -1:
                self.text, self.stopped_by = self.text[:cut], s
                return

    def end(self) -> None:
        full = self._decode(self.ids)  # the output as one decode reads it, when it agrees with what was sent
        if full.startswith(self.text[: self.sent]):
            self.text, self.stopped_by = full, None
            self._cut_at_stop()
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        upto = len(self.text) if final else max(self.sent, len(self.text) - self.holdback)
        if upto > self.sent:
            self.emit(self.text[self.sent : upto], len(self.ids))
            self.sent = upto
        self.last_emit = time.monotonic()


def generate(
    loaded: LoadedModel,
    prompt: Prompt,
    params: GenParams,
    *,
    emit: Callable[[str, int], None],
    cancel: threading.Event | None = None,
    on_rendered: Callable[[str, int], None] | None = None,
    interval: float = CHUNK_INTERVAL_S,
) -> dict[str, Any]:
    """Generate for one prompt, streaming text through `emit`; returns output and timing stats."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    tok = loaded.tokenizer
    rendered = render(tok, prompt, loaded.source.spec)
    ids, _ = fit(tok, rendered, prompt_room(loaded.model, tok, params.max_new_tokens), side=None)
    if not ids:
        raise TunelabError("the prompt is empty: nothing to generate from")
    input_ids = torch.tensor([ids], device=loaded.device)
    prompt_tokens = len(ids)
    if on_rendered:
        on_rendered(rendered, prompt_tokens)
    cancel = cancel or threading.Event()
    stream = _Stream(tok, params.stop, emit, interval)

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = cancel.is_set() or stream.stopped_by is not None
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    kwargs = _decode_kwargs(params, tok, loaded)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    start = time.monotonic()
    with torch.inference_mode():
        loaded.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            streamer=stream,
            stopping_criteria=StoppingCriteriaList([_Halt()]),
            **kwargs,
        )
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
    return noted(
        tok,
        prompt,
        {
            "output": stream.text,
            "rendered_prompt": rendered,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "stop_reason": reason,
            "latency_s": round(latency, 4),
            "ttft_s": round(ttft, 4),
            "tok_per_s": round(completion_tokens / latency, 2) if latency > 0 else 0.0,
        },
    )


def noted(tok: Any, prompt: Prompt, result: dict[str, Any]) -> dict[str, Any]:
    """`result` with a `note` when the system prompt was folded into the first user turn (said once by the
    front ends, kept in the eval's summary)."""
    if note := fold_note(tok, prompt):
        result["note"] = note
    return result


def generate_batch(
    loaded: LoadedModel,
    prompts: list[Prompt],
    params: GenParams,
    *,
    on_result: Callable[[int, dict[str, Any]], None],
    batch_size: int = 16,
    cancel: threading.Event | None = None,
) -> None:
    """Generate for many prompts in batches, calling `on_result(index, result)` as each batch ends.

    Prompts are grouped by length, so a batch pads little; padding is on the left, as decoder-only
    generation needs. Latency per item is the batch's time shared among its items.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    cancel = cancel or threading.Event()
    tok = loaded.tokenizer
    rendered, unrenderable = _rendered(tok, prompts, loaded.source.spec)
    for i, why in unrenderable.items():  # the eval names the row (or skips it, when asked to)
        on_result(i, {"output": "", "rendered_prompt": "", "stop_reason": "unrenderable", "error": why})
    room = prompt_room(loaded.model, tok, params.max_new_tokens)
    fitted = [_fitted(tok, text, room, params.truncate) if text else ([0], False) for text in rendered]
    encoded = [ids for ids, _ in fitted]
    skipped = {i for i, (ids, cut) in enumerate(fitted) if cut and not ids} | set(unrenderable)
    for i in sorted(skipped - set(unrenderable)):  # over the context with truncate=skip: reported, never generated
        on_result(i, {"output": "", "rendered_prompt": rendered[i], "stop_reason": "skipped", "truncated": True})
    if not all(ids for i, ids in enumerate(encoded) if i not in skipped):
        raise TunelabError("an eval item renders to an empty prompt: nothing to generate from")
    order = sorted(set(range(len(prompts))) - skipped, key=lambda i: len(encoded[i]))
    ends = set(stop_ids(tok, loaded.model.generation_config.eos_token_id)) | {tok.pad_token_id}

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    kwargs = _decode_kwargs(params, tok, loaded)
    if params.stop:
        kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
    prefixes = SharedPrefixes(loaded, [encoded[i] for i in order], params.max_new_tokens)
    for start in range(0, len(order), batch_size):
        if cancel.is_set():
            return
        idx = order[start : start + batch_size]
        rows = [encoded[i] for i in idx]
        if params.seed is not None:
            torch.manual_seed(params.seed)
        began = time.monotonic()
        with torch.inference_mode():
            enc, reused = prefixes.inputs(rows, tok.pad_token_id)
            out = loaded.model.generate(**enc, **reused, stopping_criteria=StoppingCriteriaList([_Cancel()]), **kwargs)
        share = (time.monotonic() - began) / len(idx)
        width = enc["input_ids"].shape[1]
        for row, i in enumerate(idx):
            text, ids, reason = _decoded(tok, out[row, width:].tolist(), ends, params, cancel)
            on_result(
                i,
                noted(
                    tok,
                    prompts[i],
                    {
                        "output": text,
                        "rendered_prompt": rendered[i],
                        "prompt_tokens": int(enc["attention_mask"][row].sum()),
                        "completion_tokens": len(ids),
                        "stop_reason": reason,
                        "truncated": fitted[i][1],
                        "latency_s": round(share, 4),
                        "ttft_s": None,
                        "tok_per_s": round(len(ids) / share, 2) if share > 0 else 0.0,
                    },
                ),
            )


PREFIX_MIN = 32  # shared tokens below which a prefix is not worth a forward pass of its own


class SharedPrefixes:
    """A batch whose prompts open with the same tokens (a k-shot prompt's demonstrations, a long system
    prompt) computes that prefix's key/value cache once, at batch 1, and reuses it: repeated over the batch,
    the left-padded suffixes after it, the attention mask `[ones(prefix) | suffix mask]` (generate takes
    position ids from the mask's running sum, so the pads in the middle are skipped), as vLLM's prefix caching
    does on a server; repeated into buffers with room for the suffixes and new tokens (core/engine/kv_room.py),
    so no step copies it again. A model whose cache cannot be repeated takes the plain path."""

    def __init__(self, loaded: LoadedModel, rows: list[list[int]], new_tokens: int = 0) -> None:
        self.loaded, self.new_tokens = loaded, new_tokens
        self.shared = _common_prefix(rows) if len(rows) > 1 else 0  # what every prompt of the call opens with
        self.cache: Any = None

    def inputs(self, rows: list[list[int]], pad_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The batch's inputs, and the reused cache to pass with them (empty: the plain path)."""
        import copy

        import torch

        shared = self.shared
        if shared < PREFIX_MIN:
            return _left_padded(rows, pad_id, self.loaded.device), {}
        prefix = rows[0][:shared]
        if self.cache is None:  # once per call, at batch 1
            ids = torch.tensor([prefix], dtype=torch.long, device=self.loaded.device)
            self.cache = self.loaded.model(input_ids=ids, use_cache=True).past_key_values
        cache = copy.deepcopy(self.cache)
        if not hasattr(cache, "batch_repeat_interleave"):
            return _left_padded(rows, pad_id, self.loaded.device), {}
        suffixes = _left_padded([r[shared:] for r in rows], pad_id, self.loaded.device)
        if not reserve(cache, len(rows), suffixes["input_ids"].shape[1] + self.new_tokens):
            cache.batch_repeat_interleave(len(rows))
        head = torch.tensor([prefix] * len(rows), dtype=torch.long, device=self.loaded.device)
        enc = {
            "input_ids": torch.cat([head, suffixes["input_ids"]], dim=1),
            "attention_mask": torch.cat([torch.ones_like(head), suffixes["attention_mask"]], dim=1),
        }
        return enc, {"past_key_values": cache}


def _common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens every row shares, leaving each at least one token of its own."""
    first, shortest = rows[0], min(len(r) for r in rows)
    n = 0
    while n < shortest - 1 and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def _rendered(tok: Any, prompts: list[Prompt], model: str) -> tuple[list[str], dict[int, str]]:
    """Each prompt as the model sees it ('' for one its template cannot render), and why those could not."""
    rendered, failed = [], {}
    for i, prompt in enumerate(prompts):
        try:
            rendered.append(render(tok, prompt, model))
        except TunelabError as exc:
            rendered.append("")
            failed[i] = str(exc)
    return rendered, failed


def _decoded(
    tok: Any, ids: list[int], ends: set[int], params: GenParams, cancel: threading.Event
) -> tuple[str, list[int], str]:
    """One batch row's new tokens: its text up to the first end token or stop string, the ids kept, and
    why it ended."""
    hit_eos = next((n for n, t in enumerate(ids) if t in ends), None)
    ids = ids if hit_eos is None else ids[:hit_eos]
    text = tok.decode(ids, skip_special_tokens=True)
    cut = min((p for p in (text.find(s) for s in params.stop) if p != -1), default=-1)
    if cut != -1:
        return text[:cut], ids, "stop"
    if hit_eos is not None:
        return text, ids, "eos"  # finished before the cancel: complete
    if len(ids) >= params.max_new_tokens or not cancel.is_set():
        return text, ids, "length"
    return text, ids, "cancelled"  # cut short: never cached, never graded


def _fitted(tok, text: str, room: int, truncate: str) -> tuple[list[int], bool]:
    """`fit` by the eval's truncation: left keeps the end, right keeps the start, skip gives ([], True)."""
    if truncate != "skip":
        return fit(tok, text, room, side=truncate)
    try:
        return fit(tok, text, room, side=None)
    except TunelabError:
        return [], True


def _decode_kwargs(params: GenParams, tok, loaded: LoadedModel) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "do_sample": not params.greedy,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": stop_ids(tok, loaded.model.generation_config.eos_token_id),
    }
    if params.min_new_tokens:
        kwargs["min_new_tokens"] = params.min_new_tokens
    if params.greedy:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None)
    return kwargs


def _left_padded(rows: list[list[int]], pad_id: int, device: str) -> dict[str, Any]:
    """A batch padded on the left, as decoder-only generation needs."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, row in enumerate(rows):
        ids[n, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[n, width - len(row) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
