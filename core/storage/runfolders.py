"""Training run folders and adapters as files: their names, the id-prefix lookup and adapter resolution,
below evals and training alike (an eval reads an adapter; it never needs the training engine for that)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import TunelabError

CONFIG_FILE, METRICS_FILE, STATUS_FILE, LOG_FILE = "run_config.json", "metrics.jsonl", "status.json", "worker.log"
STOP_FILE, CANCEL_FILE, CHECKPOINTS, ADAPTER = "STOP", "CANCEL", "checkpoints", "adapter"
ADAPTER_CONFIG = "adapter_config.json"  # what makes a folder a PEFT adapter
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file another process writes; anything else (missing, torn, `[1, 2]`) is None."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def run_folders(root: Path) -> list[Path]:
    """The run folders under the data dir; a link planted among them is not one (a run would be written
    through it)."""
    folder = Path(root) / "runs"
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]


def run_folder(root: Path, run_id: str) -> Path:
    """The folder of the run whose id starts with `run_id` (one, or a one-line error)."""
    matches = [p for p in run_folders(root) if p.name.startswith(run_id)] if run_id else []
    if len(matches) != 1:
        raise TunelabError(f"no training run '{run_id}'" if not matches else f"run id '{run_id}' is ambiguous")
    return matches[0]


def resolve_adapter(root: Path, ref: str) -> Path:
    """A folder with `adapter_config.json`, or the adapter of the training run `ref` (id prefix)."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        try:
            path = run_folder(root, ref) / ADAPTER
        except TunelabError:
            raise TunelabError(f"no adapter '{ref}': not a folder and not a training run id") from None
        if not path.is_dir():
            raise TunelabError(f"training run {ref} has no adapter yet (it is saved when the run finishes)")
    if not (path / ADAPTER_CONFIG).is_file():
        raise TunelabError(f"not a PEFT adapter folder (no adapter_config.json): {path}")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise TunelabError(f"adapter has no weights ({' or '.join(WEIGHTS)}): {path}")
    return path
