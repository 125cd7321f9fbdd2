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
    messages: tuple[dict[str, str], ...] = ()

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


def render(tokenizer: Any, prompt: Prompt, model_name: str = "model") -> str:
    """The exact string the model sees."""
    check_mode(prompt.mode)
    chat = prompt.mode == "chat" or (prompt.mode == "auto" and has_chat_template(tokenizer))
    turns = list(prompt.messages) or [{"role": "user", "content": prompt.text}]
    if prompt.system and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": prompt.system})
    if not chat:
        return "\n\n".join(t["content"] for t in turns)
    if not has_chat_template(tokenizer):
        raise TunelabError(f"model '{model_name}' has no chat template; use raw mode")
    return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer prepends BOS when asked for special tokens (Llama-2, Mistral, Gemma do)."""
    cached = getattr(tokenizer, "_tunelab_adds_bos", None)
    if cached is None:
        bos = tokenizer.bos_token_id
        cached = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
        try:
            tokenizer._tunelab_adds_bos = cached
        except AttributeError:  # a tokenizer that refuses attributes is simply asked again
            pass
    return bool(cached)


def encode(tokenizer: Any, rendered: str) -> list[int]:
    """Token ids for a rendered prompt: BOS once when the tokenizer adds one and the chat template did
    not already write it; never an EOS. Every path that turns a prompt into ids goes through here."""
    ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token
    if adds_bos(tokenizer) and not (bos and rendered.startswith(bos)):
        ids.insert(0, tokenizer.bos_token_id)
    return ids
