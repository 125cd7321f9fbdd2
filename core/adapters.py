"""Find LoRA adapters: a training run's `adapter/` folder (by run id) or any PEFT adapter folder."""

from __future__ import annotations

from pathlib import Path

from core.errors import TunelabError
from core.training.runs import ADAPTER, Runs


def resolve_adapter(root: Path, ref: str) -> Path:
    """A folder with `adapter_config.json`, or the adapter of the training run `ref` (id prefix)."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        try:
            path = Runs(root).path(ref) / ADAPTER
        except TunelabError:
            raise TunelabError(f"no adapter '{ref}': not a folder and not a training run id") from None
        if not path.is_dir():
            raise TunelabError(f"training run {ref} has no adapter yet (it is saved when the run finishes)")
    if not (path / "adapter_config.json").is_file():
        raise TunelabError(f"not a PEFT adapter folder (no adapter_config.json): {path}")
    if not (path / "adapter_model.safetensors").is_file():
        raise TunelabError(f"adapter has no adapter_model.safetensors: {path}")
    return path


def merge(root: Path, ref: str, out: Path, base: str | None = None) -> Path:
    """Fold the adapter into its base model's weights and save a plain model folder (safetensors,
    with the tokenizer and chat template), loadable anywhere with `--model OUT`."""
    import json

    from peft import PeftModel

    from core.loading import load

    adapter = resolve_adapter(root, ref)
    if base is None:
        config = json.loads((adapter.parent / "run_config.json").read_text()) if \
            (adapter.parent / "run_config.json").is_file() else {}
        base = config.get("config", {}).get("model")
        if base is None:
            raise TunelabError(f"adapter {adapter} does not say its base model: pass --base")
    if out.exists() and any(out.iterdir()):
        raise TunelabError(f"output folder is not empty: {out}")
    loaded = load(base)
    merged = PeftModel.from_pretrained(loaded.model, adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out
