"""A LoRA run as GGUF, the file llama.cpp and Ollama run: the merged model (base + LoRA, folded by the same
path as `adapters merge`) or the adapter alone as a GGUF LoRA (what llama.cpp's `convert_lora_to_gguf.py`
writes). Tensor names, metadata and llama's Q/K row order follow llama.cpp's `convert_hf_to_gguf.py`, so its
runtime reads the file as it reads its own converter's; the `gguf` package (llama.cpp's own) writes it."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.storage.runfolders import ADAPTER_CONFIG, read_json, run_dir_of
from core.training.adapters import base_of, merge, resolve_adapter
from core.training.gguf_vocab import pre_tokenizer, write_vocabulary

# transformers class -> (GGUF architecture, whether llama.cpp permutes its Q/K rows: LlamaModel.undo_permute)
ARCHITECTURES = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
}
GGUF_TYPES = ("f16", "f32")
MODELFILE = "Modelfile"


@dataclass
class Exported:
    """What an export wrote, and what the user should know about it (said once, on stderr or in the TUI)."""

    gguf: Path
    modelfile: Path | None = None
    merged: Path | None = None
    notes: list[str] = field(default_factory=list)


def gguf_module() -> Any:
    try:
        import gguf
    except ImportError:
        raise TunelabError("GGUF export needs the gguf package: pip install 'tunelab[gguf]'") from None
    return gguf


def architecture(config: dict[str, Any], where: str) -> tuple[str, bool]:
    """The GGUF architecture of a transformers config, or one line naming the one it is not."""
    name = str((config.get("architectures") or ["(none given)"])[0])
    if name not in ARCHITECTURES:
        raise TunelabError(f"GGUF export covers {', '.join(ARCHITECTURES)}; {where} is {name}")
    return ARCHITECTURES[name]


def export(
    root: Path,
    ref: str,
    out: Path,
    *,
    base: str | None = None,
    load_options: dict[str, Any] | None = None,
    gguf_type: str = "f16",
    adapter_only: bool = False,
    ollama: bool = False,
    merged: Path | None = None,
) -> Exported:
    """Write `ref`'s adapter as GGUF to `out` (a .gguf file, or a folder for `model.gguf`/`adapter.gguf`): merged into
    its base, or alone with `adapter_only`; `ollama` adds a Modelfile beside it, `merged` keeps the merged folder."""
    if gguf_type not in GGUF_TYPES:
        raise TunelabError(f"{{0}} must be one of {', '.join(GGUF_TYPES)}, got '{gguf_type}'", "gguf_type")
    if adapter_only and (ollama or merged):
        raise TunelabError(
            "{0} writes the adapter alone: there is no merged model for {1} or a merged folder",
            "adapter_only",
            "ollama",
        )
    gguf_module()
    adapter = resolve_adapter(root, ref)
    base = base or base_of(adapter)
    if base is None:
        raise TunelabError(f"adapter {adapter} does not say its base model: give {{0}}", "model")
    out, modelfile = _targets(out, adapter_only, ollama)
    config = _base_config(base, adapter_only)
    out.parent.mkdir(parents=True, exist_ok=True)
    if adapter_only:
        if config is None:
            raise TunelabError(f"base model {base}: its config.json is not on this disk (load it once first)")
        write_lora(adapter, config, out, gguf_type, name=_name_of(adapter))
        return Exported(out)
    options = dict(load_options or {})
    if options.get("dtype", "auto") == "auto":
        options["dtype"] = "float32"  # the LoRA folded in full precision; the GGUF's type is chosen below
    with tempfile.TemporaryDirectory(prefix=".tunelab-merge-", dir=out.parent) as scratch:
        folder = merge(root, str(adapter), merged or Path(scratch) / "merged", base, options)
        write_model(folder, out, gguf_type, name=_name_of(adapter))
        done = Exported(out, merged=merged)
        if modelfile is not None:
            from core.engine.modelfile import write_modelfile

            done.modelfile = modelfile
            done.notes += write_modelfile(folder, out, modelfile)
    return done


def _targets(out: Path, adapter_only: bool, ollama: bool) -> tuple[Path, Path | None]:
    """The GGUF file (in a folder: the name Ollama's and llama.cpp's examples use) and the Modelfile, both new."""
    out = out.expanduser()
    if out.suffix.lower() != ".gguf":
        out = out / ("adapter.gguf" if adapter_only else "model.gguf")
    modelfile = out.parent / MODELFILE if ollama else None
    for path in (out, modelfile):
        if path is not None and path.exists():
            raise TunelabError(f"{path} exists: remove it or name another file")
    return out, modelfile


def _name_of(adapter: Path) -> str:
    """The GGUF's `general.name`: the training run's id, or the adapter folder's name."""
    run_dir = run_dir_of(adapter)
    return run_dir.name if run_dir is not None else adapter.name


def _base_config(base: str, adapter_only: bool) -> dict[str, Any] | None:
    """The base model's config.json, where this disk has it (a folder, the demo, a cached hub id), its
    architecture, RoPE and (for a merged export) tokenizer checked: refused before anything is loaded."""
    from core.engine.modelref import config_file, resolve

    path = config_file(resolve(base, allow_pickle=True))
    config = read_json(path) if path is not None else None
    if path is None or config is None:
        return None
    architecture(config, f"base model {base}")
    _rope(config)
    tokenizer = read_json(path.parent / "tokenizer.json")
    if tokenizer is not None and not adapter_only:
        pre_tokenizer(tokenizer, path.parent / "tokenizer.json")
    return config


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: Any  # numpy dtype in the file
    read: Callable[[], Any]  # -> the numpy array, read when it is written (one tensor in memory at a time)


def write_model(folder: Path, out: Path, gguf_type: str, name: str) -> Path:
    """A transformers model folder (safetensors) as one GGUF file: hyperparameters, tokenizer, chat template
    and every tensor under llama.cpp's name."""
    gguf = gguf_module()
    config = read_json(folder / "config.json") or {}
    arch, permutes = architecture(config, str(folder))
    writer = gguf.GGUFWriter(None, arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    _hyperparameters(writer, config, gguf)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.ALL_F32)
    write_vocabulary(writer, folder, int(_need(config, "vocab_size")))
    with ExitStack() as stack:
        tensors = _model_tensors(folder, config, arch, permutes, gguf_type, stack)
        _write(writer, out, tensors)
    return out


def _need(config: dict[str, Any], key: str) -> Any:
    if key not in config:
        raise TunelabError(f"config.json has no {key}: not exported")
    return config[key]


def _hyperparameters(writer: Any, config: dict[str, Any], gguf: Any) -> None:
    heads = int(_need(config, "num_attention_heads"))
    head_dim = int(config.get("head_dim") or _need(config, "hidden_size") // heads)
    writer.add_context_length(int(_need(config, "max_position_embeddings")))
    writer.add_embedding_length(int(_need(config, "hidden_size")))
    writer.add_block_count(int(_need(config, "num_hidden_layers")))
    writer.add_feed_forward_length(int(_need(config, "intermediate_size")))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(_need(config, "rms_norm_eps")))
    writer.add_vocab_size(int(_need(config, "vocab_size")))


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings wherever the config keeps them (`rope_parameters` since transformers 5, else
    `rope_theta` and `rope_scaling`); scalings llama.cpp needs more than a tensor for are refused."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type")) or "default"
    if kind not in ("default", "llama3"):
        raise TunelabError(f"RoPE scaling '{kind}' is not exported (default and llama3 are)")
    return params


def _rope_factors(config: dict[str, Any]) -> list[float] | None:
    """Llama 3.1's frequency factors (the `rope_freqs` tensor), computed as llama.cpp's converter does."""
    params = _rope(config)
    if (params.get("rope_type", params.get("type")) or "default") != "llama3":
        return None
    base = float(params["rope_theta"])
    dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    factor, low, high = (
        float(params.get(k, d)) for k, d in (("factor", 8.0), ("low_freq_factor", 1.0), ("high_freq_factor", 4.0))
    )
    old = float(params.get("original_max_position_embeddings", config.get("original_max_position_embeddings", 8192)))
    factors = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * base ** (i / dim)
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return factors


def permute(weights: Any, heads: int) -> Any:
    """llama.cpp's `LlamaModel.permute`: each head's rows from transformers' rotate-half order into the
    interleaved pairs llama.cpp's RoPE reads (Q with the attention heads, K with the key/value heads)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _qk_heads(name: str, config: dict[str, Any], permutes: bool) -> int | None:
    """The head count to permute tensor `name` with, or None when it is not permuted."""
    if not permutes:
        return None
    heads = int(config["num_attention_heads"])
    if ".q_proj." in name:
        return heads
    return int(config.get("num_key_value_heads") or heads) if ".k_proj." in name else None


def _name_map(arch: str, config: dict[str, Any]) -> Callable[[str], str]:
    gguf = gguf_module()
    by_name = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    names = gguf.get_tensor_name_map(by_name[arch], int(config["num_hidden_layers"]))

    def gguf_name(hf_name: str) -> str:
        found = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if found is None:
            raise TunelabError(f"tensor {hf_name} has no llama.cpp name: not exported")
        return str(found)

    return gguf_name


def _file_dtype(shape: tuple[int, ...], gguf_type: str) -> Any:
    import numpy as np

    return np.float16 if gguf_type == "f16" and len(shape) > 1 else np.float32  # norms and biases stay F32


def _as_array(tensor: Any, heads: int | None, dtype: Any) -> Any:
    import numpy as np

    tensor = tensor.float()
    if heads is not None:
        tensor = permute(tensor, heads)
    return np.ascontiguousarray(tensor.contiguous().numpy(), dtype=dtype)


def _read_array(weights: Any, key: str, heads: int | None, dtype: Any) -> Any:
    return _as_array(weights.get_tensor(key), heads, dtype)


def _model_tensors(
    folder: Path, config: dict[str, Any], arch: str, permutes: bool, gguf_type: str, stack: ExitStack
) -> list[_Tensor]:
    import numpy as np
    from safetensors import safe_open

    gguf_name = _name_map(arch, config)
    tensors = []
    for file in sorted(folder.glob("*.safetensors")):
        weights = stack.enter_context(safe_open(str(file), framework="pt"))
        for key in weights.keys():
            if key.endswith(".rotary_emb.inv_freq"):  # recomputed by every runtime
                continue
            shape = tuple(weights.get_slice(key).get_shape())
            dtype = _file_dtype(shape, gguf_type)
            read = partial(_read_array, weights, key, _qk_heads(key, config, permutes), dtype)
            tensors.append(_Tensor(gguf_name(key), shape, dtype, read))
    if not tensors:
        raise TunelabError(f"no safetensors weights in {folder}")
    factors = _rope_factors(config)
    if factors is not None:
        rope = np.array(factors, dtype=np.float32)
        tensors.append(_Tensor("rope_freqs.weight", rope.shape, np.float32, lambda: rope))
    return tensors


def _write(writer: Any, out: Path, tensors: list[_Tensor]) -> None:
    """Stream the file: tensor infos first, then each tensor as it is read (a `.part` file until complete)."""
    import numpy as np

    part = out.with_name(out.name + ".part")
    for t in tensors:
        writer.add_tensor_info(t.name, t.shape, np.dtype(t.dtype), math.prod(t.shape) * np.dtype(t.dtype).itemsize)
    try:
        writer.write_header_to_file(part)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tensors:
            writer.write_tensor_data(t.read())
        writer.close()
        os.replace(part, out)
    finally:
        writer.close()
        part.unlink(missing_ok=True)


LORA_KEY = re.compile(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight")


def _lora_alpha(adapter: Path) -> float:
    """The alpha llama.cpp scales by (`alpha / rank`), refusing what a GGUF LoRA cannot hold."""
    config = read_json(adapter / ADAPTER_CONFIG) or {}
    if config.get("use_dora"):
        raise TunelabError(f"{adapter} is a DoRA adapter, which a GGUF LoRA cannot hold: export the merged model")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise TunelabError(
            f"{adapter} has per-module ranks or alphas, which a GGUF LoRA cannot hold: export the merged model"
        )
    if "lora_alpha" not in config or "r" not in config:
        raise TunelabError(f"{adapter / ADAPTER_CONFIG} has no lora_alpha or r")
    alpha = float(config["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r): the same as llama.cpp's alpha / r with alpha * sqrt(r)
    return alpha * math.sqrt(float(config["r"])) if config.get("use_rslora") else alpha


def write_lora(adapter: Path, config: dict[str, Any], out: Path, gguf_type: str, name: str) -> Path:
    """The adapter alone, as llama.cpp's LoRA GGUF: `general.type` adapter, `adapter.lora.alpha`, and each
    adapted weight's `.lora_a`/`.lora_b` under the base tensor's name (B's rows permuted where the weight's are)."""
    from peft.utils import load_peft_weights

    gguf = gguf_module()
    arch, permutes = architecture(config, f"the base of {adapter}")
    alpha = _lora_alpha(adapter)
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in load_peft_weights(str(adapter), device="cpu").items():
        found = LORA_KEY.fullmatch(key)
        if found is None:
            raise TunelabError(
                f"{adapter}: {key} is not a LoRA matrix (a fully trained module): a GGUF LoRA holds only "
                "LoRA matrices; export the merged model"
            )
        pairs.setdefault(f"{found[1]}.weight", {})[found[2]] = tensor
    gguf_name = _name_map(arch, config)
    tensors = []
    for base_name, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise TunelabError(f"{adapter}: {base_name} lacks its LoRA {'A' if 'B' in pair else 'B'} matrix")
        for suffix, tensor, heads in (("a", pair["A"], None), ("b", pair["B"], _qk_heads(base_name, config, permutes))):
            array = _as_array(tensor, heads, _file_dtype(tuple(tensor.shape), gguf_type))
            tensors.append(
                _Tensor(f"{gguf_name(base_name)}.lora_{suffix}", array.shape, array.dtype, partial(lambda a: a, array))
            )
    writer = gguf.GGUFWriter(None, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.ALL_F32)
    _write(writer, out, tensors)
    return out
