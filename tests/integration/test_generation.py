"""Generation on the real demo model: determinism, stop strings, seeds, cancel, chat template."""

import json
import threading

import pytest

from core.engine.generation import generate
from core.engine.loading import load
from core.engine.params import GenParams
from core.engine.prompt import Prompt, render
from core.errors import TunelabError

STORY = Prompt("Tell me a short story.")


def run(loaded, prompt=STORY, interval=0.0, **params):
    chunks: list[str] = []
    result = generate(loaded, prompt, GenParams(**params), emit=lambda text, _n: chunks.append(text), interval=interval)
    return result, chunks


def test_demo_model_loads_with_safe_defaults(demo_loaded):
    info = demo_loaded.info()
    assert info.device == "cpu" and info.dtype == "float32" and info.chat_template
    assert info.params_m is not None and 1 < info.params_m < 10


def test_greedy_is_deterministic_and_chunks_add_up(demo_loaded):
    a, chunks = run(demo_loaded, max_new_tokens=40)
    b, _ = run(demo_loaded, max_new_tokens=40)
    assert a["output"] == b["output"] and a["output"].strip()
    assert "".join(chunks) == a["output"]
    assert a["completion_tokens"] > 0 and a["prompt_tokens"] > 0 and a["tok_per_s"] > 0


def test_output_is_word_like_english(demo_loaded):
    result, _ = run(demo_loaded, Prompt("Anna was a", mode="raw"), max_new_tokens=40)
    words = result["output"].split()
    assert len(words) >= 10
    assert all(w.strip(".,").isalpha() for w in words)


def test_stop_string_trims_output_and_is_never_streamed(demo_loaded):
    full, _ = run(demo_loaded, max_new_tokens=60)
    assert "." in full["output"]
    result, chunks = run(demo_loaded, max_new_tokens=60, stop=(".",))
    assert result["stop_reason"] == "stop"
    assert result["output"] == full["output"].split(".")[0]
    assert "".join(chunks) == result["output"]


def test_length_limit_is_reported(demo_loaded):
    result, _ = run(demo_loaded, max_new_tokens=3)
    assert result["stop_reason"] == "length" and result["completion_tokens"] == 3


def test_seed_makes_sampling_reproducible(demo_loaded):
    outs = [run(demo_loaded, max_new_tokens=30, temperature=1.5, seed=s)[0]["output"] for s in (7, 7, 8, 9)]
    assert outs[0] == outs[1]
    assert len({outs[0], outs[2], outs[3]}) > 1


def test_cancel_mid_stream_stops_early(demo_loaded):
    cancel = threading.Event()
    chunks: list[str] = []

    def emit(text, _tokens):
        chunks.append(text)
        cancel.set()  # cancel as soon as the first text arrives

    prompt = Prompt("Anna was a", mode="raw")
    result = generate(demo_loaded, prompt, GenParams(max_new_tokens=200), emit=emit, cancel=cancel, interval=0.0)
    assert result["stop_reason"] == "cancelled"
    assert 0 < result["completion_tokens"] < 20
    assert "".join(chunks) == result["output"]


def test_chunks_are_coalesced_not_per_token(demo_loaded):
    result, chunks = run(demo_loaded, Prompt("Anna was a", mode="raw"), interval=10.0, max_new_tokens=50)
    assert result["completion_tokens"] == 50
    assert len(chunks) <= 2


def test_chat_template_is_applied_in_auto_mode(demo_loaded):
    rendered = render(demo_loaded.tokenizer, Prompt("hi", system="be brief"))
    assert rendered == "<|system|>\nbe brief<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n"
    assert render(demo_loaded.tokenizer, Prompt("hi", mode="raw")) == "hi"


def test_chat_mode_without_template_is_a_clear_error(model_copy):
    (model_copy / "chat_template.jinja").unlink()
    cfg = json.loads((model_copy / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (model_copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    loaded = load(str(model_copy))
    assert not loaded.has_chat_template
    assert render(loaded.tokenizer, Prompt("hi")) == "hi"  # auto falls back to raw
    with pytest.raises(TunelabError, match="has no chat template; use raw mode"):
        render(loaded.tokenizer, Prompt("hi", mode="chat"))
