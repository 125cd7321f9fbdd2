"""The user's settings: `config.toml` in the XDG config dir (`TUNELAB_CONFIG_DIR` overrides).

    theme = "tunelab-dark"        # a shipped theme or one in the user themes dir
    judge = "endpoint:big"        # the model grading judge:RUBRIC checks when none is given
    [keys]                        # binding id = "key" or "key1,key2" (see F1 help for the ids)
    run = "ctrl+r"
    history = "f8"

A bad file or key never stops the app: `load_config` returns the defaults for what is wrong plus one
line per problem, naming the file, line or key. Writes are atomic and keep the user's other keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

from core.errors import TunelabError

KEY_NAME = re.compile(r"^[a-z0-9_+\-]+(,[a-z0-9_+\-]+)*$")
KNOWN = {"theme", "judge", "keys", "endpoints"}


def config_dir() -> Path:
    return Path(os.environ.get("TUNELAB_CONFIG_DIR") or user_config_dir("tunelab", appauthor=False))


def config_path() -> Path:
    return config_dir() / "config.toml"


def themes_dir() -> Path:
    """User themes (TOML files like the shipped ones), read at start and whenever they change."""
    return config_dir() / "themes"


@dataclass
class Config:
    theme: str | None = None
    judge: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # [endpoints.NAME] tables, as written
    problems: list[str] = field(default_factory=list)


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        return Config(problems=[f"{path}: unreadable ({exc}); using the defaults"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Config(problems=[f"{path}: {exc}; using the defaults"])
    config = Config()
    for key in sorted(set(data) - KNOWN):
        config.problems.append(f"{path}: unknown key '{key}' ignored (known: {', '.join(sorted(KNOWN))})")
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        config.problems.append(f"{path}: 'theme' must be a string; using the default theme")
    else:
        config.theme = theme
    judge = data.get("judge")
    if judge is not None and not (isinstance(judge, str) and judge.strip()):
        config.problems.append(
            f"{path}: 'judge' must be a model (endpoint:NAME, URL#MODEL or a local one); none is used"
        )
    else:
        config.judge = judge
    endpoints = data.get("endpoints", {})
    if isinstance(endpoints, dict) and all(isinstance(v, dict) for v in endpoints.values()):
        config.endpoints = endpoints
    else:
        config.problems.append(f"{path}: [endpoints] must hold tables [endpoints.NAME]; none are used")
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        config.problems.append(f'{path}: [keys] must be a table of binding id = "key"; using the default keys')
        keys = {}
    for binding_id, value in keys.items():
        if isinstance(value, str) and KEY_NAME.match(value.replace(" ", "")):
            config.keys[binding_id] = value.replace(" ", "")
        else:
            config.problems.append(
                f'{path}: keys.{binding_id} = {value!r} is not a key like "ctrl+r" or "f5,ctrl+e"; kept the default'
            )
    return config


def save_setting(name: str, value: str, path: Path | None = None) -> None:
    """Set one top-level setting, keeping the rest of the file as written (comments, order, tables).

    A file that is not TOML is left alone and the change refused with the reason: it holds the user's
    other settings, which a rewrite would lose."""
    import tomlkit  # only when a setting is saved: not on the app's way to its first frame
    from tomlkit.exceptions import TOMLKitError

    from core.storage.atomic import writable, write_atomic

    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TunelabError(f"{path}: unreadable ({exc}); the {name} setting was not saved") from None
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise TunelabError(f"{path}: not valid TOML ({exc}); the {name} setting was not saved") from None
    document[name] = value
    with writable(str(path)):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, tomlkit.dumps(document))
