"""A byte-level BPE tokenizer (`tokenizer.json`) as GGUF metadata, as llama.cpp's converter writes it for
`gpt2`-model vocabularies: tokens and their types, merges, special ids, whether BOS is added, the chat
template, and the pre-tokenizer llama.cpp must split text with (read from the tokenizer's own settings)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.storage.runfolders import read_json

# the Split regex of a `Sequence[Split, ByteLevel(use_regex=false)]` pre-tokenizer -> llama.cpp's name for it
SPLIT_PATTERNS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


def pre_tokenizer(tokenizer: dict[str, Any], where: Path) -> str:
    """llama.cpp's `tokenizer.ggml.pre` for this tokenizer: GPT-2's regex (a plain `ByteLevel`), Llama 3's
    or Qwen2's; anything else is refused (llama.cpp would split the text otherwise), as is a BPE without
    merges (llama.cpp loads none)."""
    model = tokenizer.get("model") or {}
    pre = tokenizer.get("pre_tokenizer") or {}
    if (
        model.get("type") != "BPE"
        or model.get("byte_fallback")
        or (tokenizer.get("decoder") or {}).get("type") != "ByteLevel"
    ):
        raise TunelabError(
            f"{where}: GGUF export covers byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2 style), not this one"
        )
    if not model.get("merges"):
        raise TunelabError(f"{where}: the tokenizer has no BPE merges, without which llama.cpp cannot load it")
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"):
        return "gpt-2"
    parts = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if parts and len(parts) == 2 and parts[0].get("type") == "Split" and parts[1].get("type") == "ByteLevel":
        name = SPLIT_PATTERNS.get(str((parts[0].get("pattern") or {}).get("Regex")))
        if name and not parts[1].get("use_regex", True):
            return name
    raise TunelabError(f"{where}: its pre-tokenizer is not one llama.cpp knows by settings (GPT-2, Llama 3, Qwen2)")


def looks_special(text: str) -> bool:
    """Added tokens llama.cpp treats as control tokens though not marked special (as its converter does)."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def tokens_and_types(tokenizer: dict[str, Any], vocab_size: int, where: Path) -> tuple[list[str], list[int]]:
    """Every id's token text and GGUF token type, ids the tokenizer leaves unused as `[PADn]`."""
    from gguf import TokenType

    by_id = {int(i): str(t) for t, i in (tokenizer.get("model") or {}).get("vocab", {}).items()}
    added = {int(t["id"]): t for t in tokenizer.get("added_tokens") or []}
    past = max([*by_id, *added], default=-1)
    if past >= vocab_size:
        token = added[past]["content"] if past in added else by_id[past]
        raise TunelabError(f"{where}: token {token!r} (id {past}) is past the model's vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            text = str(added[i]["content"])
            special = added[i].get("special") or looks_special(text)
            tokens.append(text)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
    return tokens, [int(t) for t in types]


def write_vocabulary(writer: Any, folder: Path, vocab_size: int) -> None:
    """The tokenizer of model folder `folder` into `writer`; the gguf package's `SpecialVocab` reads the
    merges, special ids, add-BOS/EOS flags and chat template as llama.cpp's converter does."""
    import gguf

    path = folder / "tokenizer.json"
    tokenizer = read_json(path)
    if tokenizer is None:
        raise TunelabError(f"{folder}: no readable tokenizer.json (GGUF export needs a fast tokenizer)")
    pre = pre_tokenizer(tokenizer, path)
    tokens, types = tokens_and_types(tokenizer, vocab_size, path)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    log = logging.getLogger("gguf")
    level = log.level
    log.setLevel(logging.ERROR)  # its warnings on pair templates and empty merges are its own log lines, not ours
    try:
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
        special.add_special_token.setdefault("bos", False)  # said either way: llama.cpp's default varies
        special.add_to_gguf(writer, quiet=True)
    finally:
        log.setLevel(level)
