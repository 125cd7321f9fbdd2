"""What a prompt is and the one way it becomes a string and token ids.

`Prompt` and `MODES` need no torch (the TUI and the eval runner build requests with them). `render`
and `encode` take a loaded tokenizer; training, generation, batched eval, the rendered view and the
token counts all call `encode`, so the same prompt is the same ids on every path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import TunelabError

MODES = ("auto", "chat", "raw")  # auto: chat when the tokenizer has a chat template


def check_mode(mode: object, what: str = "mode") -> str:
    if mode not in MODES:
        raise TunelabError(f"{what} must be {', '.join(MODES[:-1])} or {MODES[-1]}, got {mode!r}")
    return str(mode)


@dataclass
class Prompt:
    """What to send: the user's text, optional system prompt, and raw/chat/auto mode.

    `messages` (chat datasets) replaces `text` with whole turns.
    """

    text: str
    system: str = ""
    mode: str = "auto"
    messages: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["messages"] = list(self.messages)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        return cls(
            data.get("text", ""), data.get("system", ""), data.get("mode", "auto"), tuple(data.get("messages") or ())
        )


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def is_chat(tokenizer: Any, prompt: Prompt) -> bool:
    return prompt.mode == "chat" or (prompt.mode == "auto" and has_chat_template(tokenizer))


def chat_turns(prompt: Prompt) -> list[dict[str, Any]]:
    """The turns a prompt sends: its messages (or its text as one user turn), the system prompt first."""
    turns = list(prompt.messages) or [{"role": "user", "content": prompt.text}]
    if prompt.system and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": prompt.system})
    return turns


def render(tokenizer: Any, prompt: Prompt, model_name: str = "model") -> str:
    """The exact string the model sees."""
    check_mode(prompt.mode)
    turns = chat_turns(prompt)
    if not is_chat(tokenizer, prompt):
        return "\n\n".join(t["content"] for t in turns)
    if not has_chat_template(tokenizer):
        raise TunelabError(f"model '{model_name}' has no chat template; use raw mode")
    return apply_template(tokenizer, turns, model_name, add_generation_prompt=True)


def apply_template(tokenizer: Any, turns: list[dict[str, Any]], model_name: str, add_generation_prompt: bool) -> str:
    """The chat template over `turns`. A template that refuses a system turn (Gemma's, Mixtral's) gets
    the system prompt folded into the first user turn, as LLaMA-Factory does; any other template error
    is one line naming the model."""
    if any(t.get("tool_calls") for t in turns) and "tool_calls" not in str(tokenizer.chat_template):
        raise TunelabError(f"model '{model_name}': its chat template has no tool calls; the row needs them")
    try:
        return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=add_generation_prompt))
    except Exception as exc:  # jinja2 raises TemplateError (and the template's own raise_exception) here
        folded = fold_system(turns)
        if folded is not turns:
            try:
                text = tokenizer.apply_chat_template(
                    folded, tokenize=False, add_generation_prompt=add_generation_prompt
                )
            except Exception:
                pass
            else:
                _mark(tokenizer, "_tunelab_folds_system", True)
                return str(text)
        raise TunelabError(f"model '{model_name}': its chat template failed ({str(exc).splitlines()[0]})") from None


FOLD_NOTE = "this model's chat template takes no system turn: the system prompt is folded into the first user turn"


def folds_system(tokenizer: Any) -> bool:
    """Whether a system prompt had to be folded into the first user turn (said once in the rendered view)."""
    return bool(getattr(tokenizer, "_tunelab_folds_system", False))


def fold_note(tokenizer: Any, prompt: Prompt) -> str:
    """FOLD_NOTE when `prompt`'s system prompt went into its first user turn (once rendered), else ''."""
    return FOLD_NOTE if prompt.system and prompt.mode != "raw" and folds_system(tokenizer) else ""


def fold_system(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The system turn prepended to the first user turn; `turns` itself when there is none to fold."""
    if not turns or turns[0]["role"] != "system":
        return turns
    system, rest = turns[0]["content"], turns[1:]
    first_user = next((i for i, t in enumerate(rest) if t["role"] == "user"), None)
    if first_user is None:
        return turns
    rest = list(rest)
    rest[first_user] = {**rest[first_user], "content": f"{system}\n\n{rest[first_user]['content']}"}
    return rest


def _mark(tokenizer: Any, name: str, value: Any) -> None:
    try:
        setattr(tokenizer, name, value)
    except AttributeError:  # a tokenizer that refuses attributes is simply asked again
        pass


PROBE = "tunelab probe answer"


def end_of_turn(tokenizer: Any) -> int | None:
    """The special token a chat template closes an assistant turn with (`<|im_end|>`, `<end_of_turn>`,
    `<|eot_id|>`, `</s>`), found by rendering a probe exchange; None without a template or such a token."""
    cached = getattr(tokenizer, "_tunelab_end_of_turn", "unset")
    if cached is None or isinstance(cached, int):
        return cached
    found = None
    if has_chat_template(tokenizer):
        turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": PROBE}]
        try:
            full = apply_template(tokenizer, turns, "model", add_generation_prompt=False)
        except TunelabError:
            full = ""
        at = full.find(PROBE)
        if at != -1:
            special = set(tokenizer.all_special_ids) | {
                i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special
            }
            after = tokenizer(full[at + len(PROBE) :], add_special_tokens=False)["input_ids"]
            found = next((i for i in after if i in special), None)
    _mark(tokenizer, "_tunelab_end_of_turn", found)
    return found


def stop_ids(tokenizer: Any, eos: int | list[int] | None) -> list[int]:
    """Where generation stops: the model's EOS ids and the chat template's end of turn, so generation
    stops exactly where training put the end of an answer."""
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    eot = end_of_turn(tokenizer)
    if eot is not None:
        ids.append(eot)
    return list(dict.fromkeys(ids))


def answer_ids(
    tokenizer: Any, prompt: Prompt, rendered: str, answer: str, limit: int, model_name: str = "model"
) -> list[int]:
    """The ids a model should produce after `rendered` to give `answer` and stop: in chat, the template's
    own assistant turn up to its end-of-turn token; in raw text (or a template that renders the prompt
    differently once answered), the answer then EOS. At most `limit` ids (a cut answer has no end)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    text, end = answer, eos
    if is_chat(tokenizer, prompt) and has_chat_template(tokenizer):
        full = apply_template(
            tokenizer, [*chat_turns(prompt), {"role": "assistant", "content": answer}], model_name, False
        )
        if full.startswith(rendered):
            text, end = full[len(rendered) :], []
    ids, _ = _window_ids(tokenizer, text, limit)
    eot = end_of_turn(tokenizer) if not end else None
    if eot is not None and eot in ids:
        ids = ids[: ids.index(eot) + 1]
    elif not end:
        end = eos
    return (ids + end)[:limit]


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer prepends BOS when asked for special tokens (Llama-2, Mistral, Gemma do)."""
    cached = getattr(tokenizer, "_tunelab_adds_bos", None)
    if cached is None:
        bos = tokenizer.bos_token_id
        cached = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
        _mark(tokenizer, "_tunelab_adds_bos", cached)
    return bool(cached)


WINDOW_CHARS_PER_TOKEN = 16  # a first guess at how much text `limit` tokens can cover; grows when it is short


def context_length(model: Any, tokenizer: Any) -> int:
    """How many tokens the model can attend to: its config, else the tokenizer's limit, else 2048."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 2048


def prompt_room(model: Any, tokenizer: Any, max_new_tokens: int) -> int:
    """How many tokens a prompt may take: the context less the new tokens, but never under half the context
    (a generous max_new_tokens is common; past the context, generation goes on as transformers allows)."""
    context = context_length(model, tokenizer)
    return context - min(max_new_tokens, context // 2)


def fit(tokenizer: Any, rendered: str, limit: int, side: str | None = "left") -> tuple[list[int], bool]:
    """`encode`, bounded: (ids, truncated). Over `limit` tokens, `side` says which end goes (left keeps the
    end of the prompt, where the question usually is; right keeps the start) and None refuses with one
    line. Only a window of text about `limit` tokens long is ever tokenized, so a 5 MB row costs what a
    long prompt costs."""
    ids, whole = _window_ids(tokenizer, rendered, limit, from_end=side != "right")
    if whole:
        ids = _with_bos(tokenizer, rendered, ids)
        if len(ids) <= limit:
            return ids, False
    if side is None:
        raise TunelabError(
            f"the prompt is over {limit:,} tokens ({len(rendered):,} characters), more than the model's context "
            "leaves for it after max_new_tokens; shorten it or lower max_new_tokens"
        )
    bos = tokenizer.bos_token_id
    starts = bool(tokenizer.bos_token) and rendered.startswith(tokenizer.bos_token)
    lead = [bos] if bos is not None and (adds_bos(tokenizer) or starts) else []
    body = ids[1:] if lead and ids[:1] == lead else ids
    keep = limit - len(lead)
    return lead + (body[-keep:] if side == "left" else body[:keep]), True


def encode(tokenizer: Any, rendered: str) -> list[int]:
    """Token ids for a rendered prompt: BOS once when the tokenizer adds one and the chat template did
    not already write it; never an EOS. Every path that turns a prompt into ids goes through here."""
    return _with_bos(tokenizer, rendered, list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))


def _with_bos(tokenizer: Any, rendered: str, ids: list[int]) -> list[int]:
    bos = tokenizer.bos_token
    if adds_bos(tokenizer) and not (bos and rendered.startswith(bos)):
        return [tokenizer.bos_token_id, *ids]
    return ids


def _window_ids(tokenizer: Any, text: str, limit: int, from_end: bool = False) -> tuple[list[int], bool]:
    """Ids (no special tokens) of a window of `text` at its start (or end) holding more than `limit` tokens,
    or of all of it, and whether it was all of it. The window starts at about `limit` tokens of text and
    grows only for text that packs many characters per token, so the work is bounded on any input."""
    window = limit * WINDOW_CHARS_PER_TOKEN
    while True:
        whole = len(text) <= window
        part = text if whole else text[-window:] if from_end else text[:window]
        ids = list(tokenizer(part, add_special_tokens=False)["input_ids"])
        if whole or len(ids) > limit:
            return ids, whole
        window *= 4
