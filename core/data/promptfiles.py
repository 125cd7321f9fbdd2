"""Prompt versions as diffable TOML files, one per name, as posting keeps requests and `llm` shares templates:
`export` writes each name's latest version, `import` reads a folder back; a version read back has the id it
was written with (the same content, so the same hash)."""

from __future__ import annotations

import re
from pathlib import Path

import tomlkit

from core.data.prompts import PromptStore, PromptVersion, read_prompt_file
from core.engine.params import GenParams
from core.errors import TunelabError
from core.storage.atomic import write_atomic

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def prompt_toml(name: str, version: PromptVersion) -> str:
    """The file form `read_prompt_file` reads: name, mode, system, template, [params], and the shots keys."""
    doc = tomlkit.document()
    doc["name"] = name
    doc["mode"] = version.mode
    doc["system"] = _text(version.system)
    doc["template"] = _text(version.template)
    if version.shots is not None and version.demonstrates:
        shots = version.shots.to_dict()
        doc["shots"] = shots.pop("k")
        for key, value in shots.items():
            doc[key] = value
    params = tomlkit.table()
    for key, value in GenParams.from_dict(version.params).to_dict().items():
        if value is not None:
            params[key] = value
    doc["params"] = params
    return tomlkit.dumps(doc)


def _text(value: str) -> tomlkit.items.String:
    return tomlkit.string(value, multiline="\n" in value)


def export_prompts(store: PromptStore, folder: Path) -> list[Path]:
    """Each name's latest version as `FOLDER/NAME.toml` (written atomically); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    latest: dict[str, str] = {}
    for row in store.versions():  # newest first
        latest.setdefault(row["name"], row["id"])
    out = []
    for name, vid in sorted(latest.items()):
        _, version = store.get(vid)
        path = folder / f"{UNSAFE.sub('_', name).strip('._') or 'prompt'}.toml"
        write_atomic(path, prompt_toml(name, version))
        out.append(path)
    return out


def import_prompts(store: PromptStore, folder: Path) -> list[tuple[str, str]]:
    """Every `*.toml` of `folder` saved as a version of its name: (name, id) each. A bad file is one line
    naming it, and nothing of the folder is saved."""
    if not folder.is_dir():
        raise TunelabError(f"prompt folder not found: {folder}")
    read = [read_prompt_file(path) for path in sorted(folder.glob("*.toml"))]
    if not read:
        raise TunelabError(f"prompt folder {folder} has no .toml files")
    return [(name, store.save(name, version)) for name, version in read]
