"""Streaming decodes incrementally and still says exactly what one full decode says: byte-level pieces of
multi-byte characters, a SentencePiece-style leading space, and stop strings split across tokens."""

import pytest
import torch

from core.engine.generation import _Stream
from tests.tiny_models import FAMILIES, tokenizer

TEXT = "Héllo wörld! The end. STOP here, then more"
WORDS = ["▁Héllo", "▁wörld", "!", "▁The", "▁end", ".", "▁ST", "OP", "▁here", ",", "▁then", "▁more"]


def metaspace_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<unk>", *WORDS])}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    raw.decoder = decoders.Metaspace(prepend_scheme="first")
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")


def streamed(tok, ids, stop=(), every=1):
    """Text is read every `every` ids (without stop strings, ids pile up between two chunks)."""
    chunks = []
    stream = _Stream(tok, tuple(stop), lambda text, n: chunks.append(text), interval=0.0)
    stream.put(torch.tensor([[1, 2]]))  # the prompt
    for at in range(0, len(ids), every):
        stream.put(torch.tensor(ids[at : at + every]))
    stream.end()
    return "".join(chunks), stream


def byte_level():  # every byte a token: ö, 世 and 🙂 arrive in pieces
    tok = tokenizer(FAMILIES[0])
    return tok, tok(TEXT + " 世界 🙂", add_special_tokens=False)["input_ids"]


def metaspace():  # SentencePiece-style: a word's leading space is part of its token
    tok = metaspace_tokenizer()
    return tok, [tok.get_vocab()[w] for w in WORDS]


@pytest.mark.parametrize("every", [1, 3])
@pytest.mark.parametrize("make", [byte_level, metaspace])
def test_the_streamed_text_is_the_full_decode(make, every):
    tok, ids = make()
    out, stream = streamed(tok, ids, every=every)
    assert out == stream.text == tok.decode(ids, skip_special_tokens=True) and out.startswith(TEXT)


@pytest.mark.parametrize("make", [byte_level, metaspace])
def test_a_stop_string_split_over_tokens_ends_the_text_before_it(make):
    tok, ids = make()
    out, stream = streamed(tok, ids, stop=("STOP",))
    assert out == stream.text == "Héllo wörld! The end. " and stream.stopped_by == "STOP"
