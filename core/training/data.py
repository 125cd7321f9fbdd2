"""Training examples through the workbench's own renderer, so a LoRA learns the exact format it is
evaluated with: a dataset row + template -> (prompt text, answer), loss on the answer only."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.data.datasets import Item
from core.data.prompts import PromptVersion, item_prompt
from core.data.shots import Demonstrations, Shots
from core.engine.loading import LoadedModel
from core.engine.prompt import Prompt, answer_ids, apply_template, chat_turns, end_of_turn, fit, is_chat, render
from core.engine.prompt import encode as encode_prompt
from core.errors import TunelabError
from core.training.config import TrainConfig


@dataclass(frozen=True)
class Example:
    ids: list[int]
    labels: list[int]  # -100 where no loss is taken


def prompt_version(config: TrainConfig) -> PromptVersion | None:
    if not config.template:
        return None
    shots = Shots.from_dict(config.shots) if config.shots else None
    return PromptVersion(config.template, config.system, config.mode, shots=shots)


def training_prompt(
    config: TrainConfig, version: PromptVersion | None, item: Item, demos: Sequence[Item] = ()
) -> Prompt:
    """The same request the workbench's variant sends (its demonstrations included); without a prompt
    version, `mode` says raw or chat."""
    return item_prompt(version, item, None if version or config.mode == "raw" else config.mode, demos)


def examples(
    loaded: LoadedModel, config: TrainConfig, items: list[Item], pool: list[Item] | None = None
) -> list[Example]:
    """Each row encoded; a k-shot prompt's demonstrations come from `pool` (the training rows), never the row
    itself, and sit in the prompt, so no loss is taken on them."""
    version = prompt_version(config)
    shots = version.shots if version is not None and version.demonstrates else None
    chosen = Demonstrations(shots, pool or items, "the training data") if shots is not None else None
    out = []
    for item in items:
        try:
            out.append(encode(loaded, config, version, item, chosen.for_item(item) if chosen else ()))
        except TunelabError as exc:  # a row the template cannot render (tool calls, say): named
            if str(exc).startswith(item.where):
                raise
            raise TunelabError(f"{item.where}: {exc}") from None
    return out


def encode(
    loaded: LoadedModel, config: TrainConfig, version: PromptVersion | None, item: Item, demos: Sequence[Item] = ()
) -> Example:
    if item.expected is None:
        how = (
            "a bare value or equals: in __expected gives one"
            if item.checks is not None
            else "name the field with expected="
        )
        raise TunelabError(f"{item.where}: no expected answer to train on ({how})")
    tok = loaded.tokenizer
    prompt = training_prompt(config, version, item, demos)
    rendered = render(tok, prompt, loaded.source.spec)
    answer = answer_ids(tok, prompt, rendered, item.expected, config.max_seq_len, loaded.source.spec)
    # the ids generation sends; over max_seq_len, the prompt is cut on the left (as eval cuts it) and keeps
    # at least half the length, so a long row still teaches its answer. Work is bounded on any row.
    room = config.max_seq_len - min(len(answer), config.max_seq_len // 2)
    prompt_ids, cut = fit(tok, rendered, room, side="left")
    prompt_labels = [-100] * len(prompt_ids) if config.answer_only_loss else list(prompt_ids)
    if not cut and config.answer_only_loss and is_chat(tok, prompt):
        prompt_labels = earlier_answers(loaded, prompt, rendered, prompt_ids) or prompt_labels
    ids = (prompt_ids + answer)[: config.max_seq_len]
    return Example(ids, (prompt_labels + answer)[: config.max_seq_len])


def earlier_answers(loaded: LoadedModel, prompt: Prompt, rendered: str, prompt_ids: list[int]) -> list[int] | None:
    """Labels for a multi-turn prompt that learn each earlier assistant turn too (unless its `weight` is 0),
    as the template writes it, up to its end-of-turn. The turns are tokenized piece by piece; when the
    pieces are not exactly `prompt_ids` (the ids generation sends), None: only the final answer is learned."""
    tok, name = loaded.tokenizer, loaded.source.spec
    turns = chat_turns(prompt)
    if not any(t["role"] == "assistant" for t in turns):
        return None
    eot = end_of_turn(tok)
    eot_text = tok.convert_ids_to_tokens(eot) if eot is not None else None
    pieces: list[tuple[str, bool]] = []  # (text, learned)
    consumed = ""
    for k, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        before = apply_template(tok, turns[:k], name, add_generation_prompt=True)
        after = apply_template(tok, turns[: k + 1], name, add_generation_prompt=False)
        if not (before.startswith(consumed) and after.startswith(before)):
            return None
        said = after[len(before) :]
        if eot_text and eot_text in said:
            said = said[: said.index(eot_text) + len(eot_text)]
        pieces += [(before[len(consumed) :], False), (said, turn.get("weight", 1) != 0)]
        consumed = before + said
    if not rendered.startswith(consumed):
        return None
    pieces.append((rendered[len(consumed) :], False))
    ids: list[int] = []
    labels: list[int] = []
    for n, (text, learned) in enumerate(pieces):
        got = encode_prompt(tok, text) if n == 0 else list(tok(text, add_special_tokens=False)["input_ids"])
        ids += got
        labels += got if learned else [-100] * len(got)
    return labels if ids == prompt_ids else None


def length_grouped_batches(data: list[Example], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, then sort within windows of 50 batches by length, so a batch pads little; the batch
    order is shuffled again so lengths do not trend through an epoch."""
    rng = random.Random(seed)
    order = list(range(len(data)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(data[i].ids))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(data: list[Example], batch: list[int], pad_id: int):
    import torch

    width = max(len(data[i].ids) for i in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        n = len(data[i].ids)
        ids[row, :n] = torch.tensor(data[i].ids)
        labels[row, :n] = torch.tensor(data[i].labels)
        mask[row, :n] = 1
    return ids, labels, mask


def pack(data: list[Example], batch: list[int], width: int) -> list[list[int]]:
    """The batch's examples in as few rows of at most `width` tokens as first-fit decreasing finds."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(batch, key=lambda i: -len(data[i].ids)):
        n = len(data[i].ids)
        fit_at = next((r for r, free in enumerate(room) if free >= n), None)
        if fit_at is None:
            rows.append([i])
            room.append(width - n)
        else:
            rows[fit_at].append(i)
            room[fit_at] -= n
    return rows


def collate_packed(data: list[Example], batch: list[int], pad_id: int, width: int):
    """One step's examples packed padding-free: several per row, each with position ids from 0 (so the
    model's mask keeps them apart) and no loss on its first token (it would be predicted from the end of
    the example before it). The same examples and targets as `collate`, in fewer, fuller rows."""
    import torch

    rows = pack(data, batch, width)
    longest = max(sum(len(data[i].ids) for i in row) for row in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), -100, dtype=torch.long)
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = len(data[i].ids)
            ids[r, at : at + n] = torch.tensor(data[i].ids)
            labels[r, at + 1 : at + n] = torch.tensor(data[i].labels[1:])
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(longest - at)  # the padding tail: a block of its own, never a target
    return ids, labels, positions


def model_inputs(data: list[Example], batch: list[int], pad_id: int, width: int, packed: bool):
    """One micro-batch as the model's keyword arguments (packed, or padded with an attention mask), and how
    many of its tokens are real (the rest is padding)."""
    if packed:
        ids, labels, positions = collate_packed(data, batch, pad_id, width)
        return {"input_ids": ids, "position_ids": positions, "labels": labels}, sum(len(data[i].ids) for i in batch)
    ids, labels, mask = collate(data, batch, pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}, int(mask.sum())
