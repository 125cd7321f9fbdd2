"""An adapter's files read without torch, checked against a base model's before any eval exists: its config
parses, its weights are a readable safetensors file, and each LoRA matrix fits the base module it adapts
(read from both safetensors headers: a few kilobytes, no weights). A refused adapter is one line, and a
refused command writes nothing."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from core.errors import TunelabError

HEADER_CAP = 100 * 2**20  # a safetensors header beyond this is not one
INDEX = "model.safetensors.index.json"
LORA = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")
PACKED = {"U8", "I8", "U4", "I4"}  # quantised base weights: their stored shapes are not the module's


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor name -> dtype, shape, offsets), or a one-line error."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            size = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
            if not 0 < size <= min(HEADER_CAP, path.stat().st_size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TunelabError(f"{path}: not a readable safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise TunelabError(f"{path}: not a readable safetensors file (its header is not an object)")
    return {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def base_shapes(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """A local model's tensors (name -> dtype, shape), from its safetensors headers (sharded or not)."""
    files = sorted(folder.glob("*.safetensors"))
    if (folder / INDEX).is_file():
        try:
            index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
            files = sorted({folder / name for name in index["weight_map"].values()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # the shards on disk, as they are
    out: dict[str, tuple[str, list[int]]] = {}
    for file in files:
        for name, info in safetensors_header(file).items():
            out[name] = (str(info.get("dtype")), list(info.get("shape") or []))
    return out


def check_adapter(adapter: Path, model: str, model_folder: Path | None) -> None:
    """Refuse, in one line, an adapter whose config or weights are damaged or that was trained on another base
    than `model` (local folder `model_folder`; None: a hub id, checked when it loads)."""
    config_path = adapter / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TunelabError(f"adapter {adapter}: adapter_config.json is not readable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TunelabError(f"adapter {adapter}: adapter_config.json is not a JSON object")
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        return  # the older .bin: peft reads it with torch's weights-only unpickler, at load
    tensors = safetensors_header(weights)
    if model_folder is None:
        return
    base = base_shapes(model_folder)
    named = str(config.get("base_model_name_or_path") or "an unnamed base")
    found = 0
    for key, info in tensors.items():
        match = LORA.match(key)
        if not match or not isinstance(info.get("shape"), list) or len(info["shape"]) != 2:
            continue
        module = base.get(f"{match.group('module')}.weight")
        if module is None:
            continue
        found += 1
        if module[0] in PACKED or len(module[1]) != 2:
            continue
        out_features, in_features = module[1]
        rows, cols = info["shape"]
        if (match.group("which") == "A" and cols != in_features) or (
            match.group("which") == "B" and rows != out_features
        ):
            raise TunelabError(
                f"adapter {adapter} was trained on {named}, not on the model {model}; first mismatch: {key}"
            )
    lora_keys = [key for key in tensors if LORA.match(key)]
    if lora_keys and not found and base:
        raise TunelabError(
            f"adapter {adapter} was trained on {named}, not on the model {model}; "
            f"first mismatch: {lora_keys[0]} (no such module)"
        )
