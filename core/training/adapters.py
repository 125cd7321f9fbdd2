"""Find LoRA adapters: a training run's `adapter/` folder (by run id) or any PEFT adapter folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.engine.host import adapter_failure
from core.errors import TunelabError
from core.storage.runfolders import ADAPTER_CONFIG, CONFIG_FILE, resolve_adapter, run_dir_of


# the .bin is peft's older default; peft reads it with torch's weights-only unpickler, which runs no code
def base_of(adapter: Path) -> str | None:
    """The base model an adapter names: its training run's model, else `adapter_config.json`'s."""
    import json

    for path, keys in (
        ((run_dir_of(adapter) or adapter.parent) / CONFIG_FILE, ("config", "model")),
        (adapter / ADAPTER_CONFIG, ("base_model_name_or_path",)),
    ):
        try:
            value: Any = json.loads(path.read_text(encoding="utf-8"))
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str) and value:
            return value
    return None


def stored_dtype(base: str) -> str | None:
    """The dtype the base model's config.json says its weights are stored in, if it says one, whatever names
    the base: the `demo` alias, a folder, or a hub id whose files the local cache holds."""
    import json

    from core.engine.modelref import config_file, resolve

    try:
        path = config_file(resolve(base, allow_pickle=True))
        config = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError, TunelabError):
        return None
    value = config.get("torch_dtype") or config.get("dtype") if isinstance(config, dict) else None
    return value if value in ("float32", "float16", "bfloat16") else None


def merge(root: Path, ref: str, out: Path, base: str | None = None, load_options: dict[str, Any] | None = None) -> Path:
    """Fold the adapter into its base model's weights and save a plain model folder (safetensors,
    with the tokenizer and chat template), loadable anywhere with `--model OUT`."""
    from peft import PeftModel

    from core.engine.loading import load

    adapter = resolve_adapter(root, ref)
    base = base or base_of(adapter)
    if base is None:
        raise TunelabError(f"adapter {adapter} does not say its base model: give {{0}}", "model")
    if out.exists() and any(out.iterdir()):
        raise TunelabError(f"output folder is not empty: {out}")
    options = dict(load_options or {})
    if options.get("dtype", "auto") == "auto":
        options["dtype"] = stored_dtype(base) or "auto"  # a bf16 base stays bf16, not float32 at twice the size
    loaded = load(base, **options)
    try:
        merged = PeftModel.from_pretrained(loaded.model, adapter).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise adapter_failure(adapter, base, exc) from None
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out
