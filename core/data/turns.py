"""Chat rows as the tools people train with write them, turned into one list of turns.

- OpenAI `messages`: `role`/`content`, content as a string or as parts (text parts joined; any other part
  is refused naming the row), assistant `tool_calls`, `tool` turns, and a per-turn `weight` (0 or 1).
  LLaMA-Factory's v1 rows read too: a text part's text as `value`, the turn's weight as `loss_weight`.
- ShareGPT `conversations`: `from`/`value` with the usual tags (human, gpt, system, function_call,
  observation), plus a row-level `system`, as LLaMA-Factory reads it.
- Alpaca with `history` ([[question, answer], ...]): the earlier exchanges become turns.

A turn is `{"role", "content"}` plus, where given, `tool_calls`, `tool_call_id`, `name` and `weight`.
"""

from __future__ import annotations

import json
from typing import Any

from core.errors import TunelabError

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}
ROLES = ("system", "user", "assistant", "tool")


def openai_turns(where: str, messages: Any, field: str = "messages") -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise TunelabError(f"{where}: field '{field}' must be a non-empty list")
    turns = []
    for i, m in enumerate(messages):
        at = f"{where}: {field}[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise TunelabError(f"{at} needs a 'role' of {', '.join(ROLES)}")
        turn: dict[str, Any] = {"role": m["role"], "content": _content(at, m.get("content"), bool(m.get("tool_calls")))}
        if m.get("tool_calls"):
            if m["role"] != "assistant" or not isinstance(m["tool_calls"], list):
                raise TunelabError(f"{at}: 'tool_calls' must be a list on an assistant turn")
            turn["tool_calls"] = m["tool_calls"]
        for key in ("tool_call_id", "name"):
            if isinstance(m.get(key), str):
                turn[key] = m[key]
        for key in ("weight", "loss_weight"):  # loss_weight: LLaMA-Factory v1's name (0.0 or 1.0)
            if key in m:
                if m[key] not in (0, 1) or isinstance(m[key], bool):
                    raise TunelabError(f"{at}: '{key}' must be 0 or 1")
                turn["weight"] = int(m[key])
        turns.append(turn)
    return turns


def _content(at: str, content: Any, has_tool_calls: bool) -> str:
    if isinstance(content, str):
        return content
    if content is None and has_tool_calls:
        return ""
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text":
                raise TunelabError(f"{at}: content[{j}] is a '{kind}' part; only text parts are supported")
            text = part.get("text", part.get("value"))  # `value`: LLaMA-Factory v1's name for it
            if not isinstance(text, str):
                raise TunelabError(f"{at}: content[{j}] is a text part with no string 'text' (or 'value')")
            texts.append(text)
        return "\n".join(texts)
    raise TunelabError(f"{at} needs a string 'content' (or a list of text parts)")


def sharegpt_turns(where: str, row: dict[str, Any], field: str = "conversations") -> list[dict[str, Any]]:
    conversation = row.get(field)
    if not isinstance(conversation, list) or not conversation:
        raise TunelabError(f"{where}: field '{field}' must be a non-empty list")
    turns: list[dict[str, Any]] = []
    system = row.get("system")
    if isinstance(system, str) and system:
        turns.append({"role": "system", "content": system})
    for i, m in enumerate(conversation):
        at = f"{where}: {field}[{i}]"
        if not isinstance(m, dict):
            raise TunelabError(f"{at} must be an object with 'from' and 'value'")
        tag, value = m.get("from", m.get("role")), m.get("value", m.get("content"))
        role = SHAREGPT_ROLES.get(str(tag).lower()) if isinstance(tag, str) else None
        if role is None:
            raise TunelabError(f"{at}: unknown speaker {tag!r} (known: {', '.join(SHAREGPT_ROLES)})")
        if not isinstance(value, str):
            raise TunelabError(f"{at}: 'value' must be a string")
        if str(tag).lower() == "function_call":
            turns.append({"role": "assistant", "content": "", "tool_calls": [_tool_call(at, value)]})
        else:
            turn: dict[str, Any] = {"role": role, "content": value}
            if "weight" in m and m["weight"] in (0, 1):
                turn["weight"] = m["weight"]
            turns.append(turn)
    return turns


def _tool_call(at: str, value: str) -> dict[str, Any]:
    try:
        call = json.loads(value)
    except json.JSONDecodeError:
        raise TunelabError(f"{at}: a function_call value must be JSON with 'name' and 'arguments'") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise TunelabError(f"{at}: a function_call value must be JSON with 'name' and 'arguments'")
    return {"type": "function", "function": {"name": call["name"], "arguments": call.get("arguments", {})}}


def history_turns(where: str, history: Any) -> list[dict[str, Any]]:
    """Alpaca's `history`: earlier [question, answer] pairs, oldest first."""
    if not isinstance(history, list):
        raise TunelabError(f"{where}: field 'history' must be a list of [question, answer] pairs")
    turns = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise TunelabError(f"{where}: history[{i}] must be a [question, answer] pair of strings")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return turns


def split_answer(where: str, turns: list[dict[str, Any]]) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """(the prompt turns, the final assistant answer or None); the prompt must end where a model answers."""
    expected = None
    if turns[-1]["role"] == "assistant" and not turns[-1].get("tool_calls"):
        expected = turns.pop()["content"]
    if not turns or turns[-1]["role"] not in ("user", "tool"):
        raise TunelabError(f"{where}: the conversation must end with a user (or tool) turn, then optionally the answer")
    return tuple(turns), expected
