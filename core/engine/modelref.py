"""Decide what a model spec names (the demo, a local folder, a hub id) and check it before loading.

Pure Python, so the TUI can reject a bad path at once without starting the model worker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core import demo
from core.errors import TunelabError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user typed
    location: str  # local folder path or hub id
    local: bool


def resolve(spec: str, allow_pickle: bool = False) -> ModelSource:
    """Map a spec to a source; local folders are checked for config and safetensors weights here."""
    spec = spec.strip()
    if not spec:
        raise TunelabError("no model given")
    if spec == demo.MODEL_ALIAS:
        path = demo.MODEL_DIR
    else:
        path = Path(spec).expanduser()
        looks_local = spec.startswith((".", "/", "~")) or path.exists() or not HUB_ID.match(spec)
        if not looks_local:
            return ModelSource(spec, spec, local=False)
    check_folder(path, allow_pickle)
    return ModelSource(spec, str(path.resolve()), local=True)


def check_folder(path: Path, allow_pickle: bool) -> None:
    if not path.exists():
        raise TunelabError(f"model folder not found: {path}")
    if not path.is_dir():
        raise TunelabError(f"not a model folder (it is a file): {path}")
    if not (path / "config.json").is_file():
        raise TunelabError(f"not a model folder (no config.json): {path}")
    names = [p.name for p in path.iterdir()]
    if any(n.endswith(".safetensors") for n in names):
        return
    pickled = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickled and not allow_pickle:
        raise TunelabError(
            f"model folder has only pickle weights ({pickled[0]}), which can run code when "
            f"loaded; convert to safetensors or pass --allow-pickle: {path}"
        )
    if not pickled:
        raise TunelabError(f"no model weights (*.safetensors) in {path}")


def ships_chat_template(source: ModelSource) -> bool | None:
    """Whether a local model folder ships a chat template (read from its files, no torch); None for a hub
    id, which is only known once loaded."""
    if not source.local:
        return None
    folder = Path(source.location)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def fingerprint(source: ModelSource) -> str:
    """Changes when the model's files change: a folder's files, or the revision of a hub id that the local
    cache holds (what loading it reads; an update on the hub is a new revision)."""
    if source.local:
        return folder_fingerprint(Path(source.location))
    return f"hub:{source.location}@{cached_revision(source.location) or 'not cached'}"


def config_file(source: ModelSource) -> Path | None:
    """The model's config.json on this disk: in its folder, or in the local Hugging Face cache for a hub id."""
    if source.local:
        return Path(source.location) / "config.json"
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(source.location, "config.json")
    return Path(path) if isinstance(path, str) else None


def cached_revision(hub_id: str) -> str | None:
    """The commit of `hub_id`'s `main` in the local Hugging Face cache, read from disk (no network)."""
    path = config_file(ModelSource(hub_id, hub_id, local=False))
    return path.parent.name if path is not None else None


def folder_fingerprint(folder: Path) -> str:
    """A hash of the folder's path and its files' names, sizes and mtimes: cheap, no weights read."""
    import hashlib

    digest = hashlib.sha256(str(folder.resolve()).encode())
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
