"""Where tunelab keeps its files: `TUNELAB_HOME` when set, else the platform's data directory."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

from core.errors import TunelabError


def data_dir() -> Path:
    """The data root (history, runs, logs), created private (0700) on first use."""
    return private_root(Path(os.environ.get("TUNELAB_HOME") or user_data_dir("tunelab", appauthor=False)))


def private_root(root: Path) -> Path:
    """The data root, created 0700; unlike the folders inside it, it may be a link the user made."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def refused_link(path: Path) -> TunelabError:
    """The one line for a symlink planted where tunelab writes."""
    return TunelabError(f"{path} is a symbolic link; tunelab never writes through one (remove it)")


PRIVATE_UMASK = 0o077


def private_files() -> None:
    """Every file and folder this process (and its children) creates is the user's alone (0600/0700):
    prompts, outputs, adapters and logs can hold private data. Called first in every tunelab process."""
    os.umask(PRIVATE_UMASK)


def ensure_private_dir(path: Path) -> Path:
    """A 0700 folder inside the data dir; a symlink planted in its place is refused, never written through."""
    if path.is_symlink():
        raise refused_link(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def logs_dir() -> Path:
    return ensure_private_dir(data_dir() / "logs")


def package_root() -> Path:
    """The folder that holds the `core` package (a checkout or site-packages)."""
    return Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child tunelab starts: this one, with the package importable."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root()), os.environ.get("PYTHONPATH")]))
    return env
