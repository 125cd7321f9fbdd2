"""Themes are TOML files of Textual Theme fields; the shipped ones live in the `themes` package."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from textual.theme import Theme

from core.errors import TunelabError

DEFAULT_THEME = "tunelab-dark"
FIELDS = {
    "name",
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "dark",
    "luminosity_spread",
    "text_alpha",
    "variables",
}


def parse_theme(text: str, source: str) -> Theme:
    """One theme from TOML text; errors name the file and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TunelabError(f"theme {source}: {exc}") from None
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise TunelabError(f"theme {source}: unknown key '{unknown[0]}'")
    for key in ("name", "primary"):
        if not isinstance(data.get(key), str):
            raise TunelabError(f"theme {source}: '{key}' is required and must be a string")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise TunelabError(f"theme {source}: {exc}") from None


def shipped_themes() -> list[Theme]:
    """The themes inside the installed package (works from a wheel, not only a checkout)."""
    found = [f for f in files("themes").iterdir() if f.name.endswith(".toml")]
    return [parse_theme(f.read_text(encoding="utf-8"), f.name) for f in sorted(found, key=lambda f: f.name)]


def user_themes(folder: Path) -> tuple[list[Theme], list[str]]:
    """Themes from the user's themes dir; a bad file is one problem line and is skipped."""
    themes, problems = [], []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            themes.append(parse_theme(path.read_text(encoding="utf-8"), str(path)))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"theme {path}: unreadable ({exc})")
        except TunelabError as exc:
            problems.append(str(exc))
    return themes, problems


def folder_stamp(folder: Path) -> tuple:
    """What changes when a theme file is added, removed or edited (polled for hot reload)."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*.toml")))
    except OSError:
        return ()
