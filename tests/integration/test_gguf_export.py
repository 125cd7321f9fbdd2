"""`tunelab adapters export --gguf`: a LoRA merged into its base, or alone, as the GGUF llama.cpp and Ollama run,
read back with the gguf package's own reader; and the Ollama Modelfile's template and stops."""

import numpy as np
import pytest

from core.demo.build import CHAT_TEMPLATE
from core.errors import TunelabError
from tests.conftest import here
from tests.tiny_models import FAMILIES, LLAMA3, build, plain_peft_adapter

pytestmark = pytest.mark.slow
BY_NAME = {f.name: f for f in FAMILIES}
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GGUF_NAMES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny random models: Llama 3 (2 heads, 1 key/value head: Q and K permuted with different counts)."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("gguf-bases")
    built = {name: build(BY_NAME[name], root / name, merges=True) for name in ("llama3", "llama2", "qwen2", "gpt2")}
    qwen2 = AutoModelForCausalLM.from_pretrained(built["qwen2"])
    # room for the <|endoftext|> that transformers' Qwen2 tokenizer adds (real Qwen2 models have it)
    qwen2.resize_token_embeddings(288)
    qwen2.save_pretrained(built["qwen2"])
    return built


def reader(path):
    from gguf import GGUFReader

    return GGUFReader(path)


def field(read, key):
    return read.fields[key].contents()


def tensors(read):
    return {t.name: t for t in read.tensors}


def merged_weights(base, adapter):
    """The merged weights as peft computes them, and the base's, in float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().state_dict()
    return {k: v.numpy() for k, v in merged.items()}, {k: v.numpy() for k, v in before.items()}


def unpermute(rows, heads):
    """Back from llama.cpp's interleaved RoPE row order to transformers' rotate-half order, per head."""
    return rows.reshape(heads, rows.shape[0] // heads // 2, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def test_the_merged_model_is_a_llama_gguf_with_its_tokenizer_template_and_merged_weights(folders, tmp_path, home):
    from core.workbench.service import Workbench

    adapter = plain_peft_adapter(folders["llama3"], tmp_path / "lora", targets=ALL_LINEAR, lora_alpha=8)
    done = Workbench(home).adapters.export_gguf(str(adapter), tmp_path / "out", gguf_type="f32")
    assert done.gguf == tmp_path / "out" / "model.gguf" and done.modelfile is None
    read = reader(done.gguf)
    assert field(read, "general.architecture") == "llama" and field(read, "llama.block_count") == 2
    assert field(read, "llama.attention.head_count") == 2 and field(read, "llama.attention.head_count_kv") == 1
    assert field(read, "llama.embedding_length") == 32 and field(read, "llama.feed_forward_length") == 64
    assert field(read, "llama.context_length") == 256 and field(read, "llama.rope.dimension_count") == 16
    assert field(read, "tokenizer.ggml.model") == "gpt2" and field(read, "tokenizer.ggml.pre") == "gpt-2"
    assert len(field(read, "tokenizer.ggml.tokens")) == field(read, "llama.vocab_size") == 273
    assert field(read, "tokenizer.ggml.tokens")[259] == "<s>" and field(read, "tokenizer.ggml.bos_token_id") == 259
    assert field(read, "tokenizer.ggml.merges") == ["Ġ t", "h e", "Ġt he"]
    assert field(read, "tokenizer.ggml.add_bos_token") is True  # the Llama 3 family's tokenizer adds BOS
    assert field(read, "tokenizer.chat_template") == LLAMA3
    found = tensors(read)
    blocks = {f"blk.{i}.{n}.weight" for i in range(2) for n in (*GGUF_NAMES, "attn_norm", "ffn_norm")}
    assert set(found) == blocks | {"token_embd.weight", "output_norm.weight", "output.weight"}
    merged, base = merged_weights(folders["llama3"], adapter)
    q, k = "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"
    assert not np.allclose(merged[q], base[q])  # the adapter changes the weights
    assert found["blk.1.attn_q.weight"].data.shape == merged[q].shape == (32, 32)
    np.testing.assert_allclose(unpermute(np.array(found["blk.1.attn_q.weight"].data), 2), merged[q], rtol=1e-6)
    np.testing.assert_allclose(unpermute(np.array(found["blk.1.attn_k.weight"].data), 1), merged[k], rtol=1e-6)
    v = "model.layers.0.self_attn.v_proj.weight"
    np.testing.assert_allclose(found["blk.0.attn_v.weight"].data, merged[v], rtol=1e-6)  # V is not permuted
    np.testing.assert_allclose(found["output.weight"].data, merged["lm_head.weight"], rtol=1e-6)


@pytest.mark.parametrize("rslora", [False, True])
def test_the_adapter_alone_is_a_gguf_lora_whose_scaled_product_is_the_merged_change(folders, tmp_path, home, rslora):
    from core.workbench.service import Workbench

    adapter = plain_peft_adapter(
        folders["llama3"], tmp_path / "lora", targets=ALL_LINEAR, lora_alpha=8, use_rslora=rslora
    )
    out = tmp_path / "lora.gguf"
    Workbench(home).adapters.export_gguf(str(adapter), out, adapter_only=True, gguf_type="f32")
    read = reader(out)
    assert field(read, "general.type") == "adapter" and field(read, "adapter.type") == "lora"
    assert field(read, "general.architecture") == "llama"
    alpha = field(read, "adapter.lora.alpha")
    assert alpha == (16.0 if rslora else 8.0)  # rsLoRA's alpha/sqrt(r) as llama.cpp's alpha/r, r = 4
    found = tensors(read)
    assert set(found) == {f"blk.{i}.{n}.weight.lora_{ab}" for i in range(2) for n in GGUF_NAMES for ab in "ab"}
    merged, base = merged_weights(folders["llama3"], adapter)
    for gguf_name, hf_name, heads in (("attn_k", "self_attn.k_proj", 1), ("ffn_down", "mlp.down_proj", None)):
        a = np.array(found[f"blk.0.{gguf_name}.weight.lora_a"].data)
        b = np.array(found[f"blk.0.{gguf_name}.weight.lora_b"].data)
        assert a.shape[0] == b.shape[1] == 4
        change = alpha / 4 * (b @ a)  # llama.cpp: W + (alpha / rank) * B A
        key = f"model.layers.0.{hf_name}.weight"
        wanted = merged[key] - base[key]
        np.testing.assert_allclose(unpermute(change, heads) if heads else change, wanted, atol=1e-6)


DEMO_MODELFILE = '''# written by tunelab: ollama create NAME -f Modelfile
FROM ./model.gguf
TEMPLATE """{{ range .Messages }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}<|assistant|>
"""
PARAMETER stop "</s>"
PARAMETER stop "<|end|>"
PARAMETER repeat_penalty 1
'''


def test_export_on_the_command_line_writes_an_f16_gguf_and_a_modelfile_for_the_demo(capsys, tmp_path, home):
    from core import demo

    adapter = plain_peft_adapter(demo.MODEL_DIR, tmp_path / "demo-lora", targets=ALL_LINEAR)
    out = tmp_path / "ollama" / "model.gguf"
    ran = here(capsys, "adapters", "export", str(adapter), "--gguf", str(out), "--ollama", "--out", str(tmp_path / "m"))
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "ollama" / "Modelfile").read_text() == DEMO_MODELFILE
    assert f"merged model written to {out} (GGUF f16)" in ran.stderr and "ollama create NAME" in ran.stderr
    assert (tmp_path / "m" / "config.json").is_file()  # --out keeps the merged folder, for a parity check
    read = reader(out)
    found = tensors(read)
    assert (
        found["blk.0.attn_q.weight"].tensor_type.name == "F16"
        and found["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    )
    assert field(read, "tokenizer.ggml.add_bos_token") is False  # the demo's tokenizer adds no BOS
    assert len(field(read, "tokenizer.ggml.merges")) > 0 and field(read, "tokenizer.ggml.eos_token_id") == 2
    assert field(read, "tokenizer.chat_template") == CHAT_TEMPLATE
    again = here(capsys, "adapters", "export", str(adapter), "--gguf", str(out))
    assert again.returncode == 2 and f"{out} exists" in again.stderr and "Traceback" not in again.stderr


def test_a_template_without_role_tags_gets_a_note_in_the_modelfile_and_on_stderr(folders, tmp_path):
    from core.engine.modelfile import write_modelfile

    notes = write_modelfile(folders["llama2"], tmp_path / "model.gguf", tmp_path / "Modelfile")
    text = (tmp_path / "Modelfile").read_text()
    assert 'TEMPLATE """' not in text and "# tunelab could not translate the chat template" in text
    assert "FROM ./model.gguf" in text and 'PARAMETER stop "</s>"' in text
    assert len(notes) == 1 and "could not translate the chat template (its message headers do not name" in notes[0]


@pytest.mark.parametrize(
    ("family", "wanted"),
    [
        (
            "qwen2",
            "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ),
        ("zephyr", "{{ range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>{{ end }}<|assistant|>"),
        (
            "gemma",  # refuses a system turn: folded into the first user turn, as tunelab does; BOS added by the tokenizer
            '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ else }}'
            '<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
            '{{ if and $system (eq .Role "user") }}{{ $system }}\n\n{{ $system = "" }}{{ end }}{{ .Content }}'
            "<end_of_turn>\n{{ end }}{{ end }}<start_of_turn>model\n",
        ),
    ],
)
def test_role_tag_templates_translate_to_go_templates(family, wanted, tmp_path):
    from core.engine.modelfile import chat_shape, go_template
    from core.engine.prompt import adds_bos
    from tests.tiny_models import tokenizer

    tok = tokenizer(BY_NAME[family])

    def render(messages, generation):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    assert go_template(chat_shape(render, tok.bos_token), tok.bos_token if adds_bos(tok) else None) == wanted


def test_a_non_llama_architecture_is_refused_in_one_line_before_anything_is_loaded(folders, tmp_path, home):
    from core.workbench.service import Workbench

    adapter = plain_peft_adapter(folders["gpt2"], tmp_path / "gpt2-lora", targets=("c_attn",))
    with pytest.raises(TunelabError) as caught:
        Workbench(home).adapters.export_gguf(str(adapter), tmp_path / "out.gguf")
    assert "GPT2LMHeadModel" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out.gguf").exists()


def test_a_tokenizer_llama_cpp_cannot_load_is_refused_before_the_merge(tmp_path, home):
    from core.workbench.service import Workbench

    base = build(BY_NAME["llama3"], tmp_path / "no-merges")  # a byte-level BPE with no merges
    adapter = plain_peft_adapter(base, tmp_path / "lora")
    with pytest.raises(TunelabError, match="has no BPE merges, without which llama.cpp cannot load it"):
        Workbench(home).adapters.export_gguf(str(adapter), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing merged, nothing written
    assert Workbench(home).adapters.export_gguf(str(adapter), tmp_path / "lora.gguf", adapter_only=True).gguf.is_file()


def test_qwen2_is_exported_with_its_biases_and_unpermuted_rows(folders, tmp_path, home):
    from core.workbench.service import Workbench

    adapter = plain_peft_adapter(folders["qwen2"], tmp_path / "lora", targets=("q_proj", "k_proj"))
    done = Workbench(home).adapters.export_gguf(str(adapter), tmp_path / "q.gguf", gguf_type="f32")
    read = reader(done.gguf)
    assert field(read, "general.architecture") == "qwen2" and field(read, "tokenizer.ggml.add_bos_token") is False
    found = tensors(read)
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= set(found)
    merged, _ = merged_weights(folders["qwen2"], adapter)
    np.testing.assert_allclose(
        found["blk.0.attn_q.weight"].data, merged["model.layers.0.self_attn.q_proj.weight"], rtol=1e-6
    )
