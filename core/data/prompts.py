"""Prompt versions: identified by a hash of their content, grouped by name, diffable.

Saving the same content twice is a no-op, so every run can save its prompt without growing the
history; a change to the system prompt, the template, the mode or any parameter is a new version.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import Query

from core.data.datasets import Item
from core.data.shots import SHOT_KEYS, Shots, demo_prompt
from core.data.templates import Template
from core.engine.params import GenParams
from core.engine.prompt import Prompt, check_mode
from core.errors import TunelabError
from core.history.store import now_iso
from core.storage.meta import Meta

TABLE = "prompt_versions"


@dataclass(frozen=True)
class PromptVersion:
    template: str
    system: str = ""
    mode: str = "auto"
    params: dict[str, Any] = field(default_factory=lambda: GenParams().to_dict())
    shots: Shots | None = None  # demonstrations from the training rows (none: zero-shot)

    def __post_init__(self) -> None:
        Template(self.template)
        Template(self.system)
        GenParams.from_dict(self.params)
        check_mode(self.mode, "prompt mode")

    @property
    def id(self) -> str:
        """A hash of the content (shots, their rule and seed included; a zero-shot version's id is as it was)."""
        content: dict[str, Any] = {
            "system": self.system,
            "template": self.template,
            "mode": self.mode,
            "params": GenParams.from_dict(self.params).to_dict(),
        }
        if self.demonstrates:
            content["shots"] = self.shots.to_dict()  # type: ignore[union-attr]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def demonstrates(self) -> bool:
        return self.shots is not None and self.shots.k > 0

    @property
    def shots_label(self) -> str:
        """`4-shot similar`, or empty for a zero-shot version."""
        return self.shots.label if self.demonstrates else ""  # type: ignore[union-attr]

    @property
    def gen_params(self) -> GenParams:
        return GenParams.from_dict(self.params)

    def as_text(self) -> str:
        """A stable text form, for diffs."""
        params = GenParams.from_dict(self.params).to_dict()
        lines = [
            f"mode: {self.mode}",
            "system:",
            *self.system.splitlines(),
            "template:",
            *self.template.splitlines(),
            "params:",
        ]
        lines += [f"  {k} = {json.dumps(v)}" for k, v in params.items()]
        if self.demonstrates:
            lines += ["shots:", *(f"  {k} = {json.dumps(v)}" for k, v in self.shots.to_dict().items())]  # type: ignore[union-attr]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        out = {"template": self.template, "system": self.system, "mode": self.mode, "params": self.params}
        if self.demonstrates:
            out["shots"] = self.shots.to_dict()  # type: ignore[union-attr]
        return out

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> PromptVersion:
        shots = row.get("shots")
        return cls(
            row["template"],
            row.get("system", ""),
            row.get("mode", "auto"),
            row.get("params") or GenParams().to_dict(),
            Shots.from_dict(shots) if isinstance(shots, dict) else None,
        )


def read_prompt_file(path: Path) -> tuple[str, PromptVersion]:
    """A prompt file (TOML: name, system, mode, template, [params]); errors name the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TunelabError(f"prompt file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TunelabError(f"prompt file {path.name}: {exc}") from None
    known = {"name", "system", "mode", "template", "params", *SHOT_KEYS}
    if unknown := sorted(set(data) - known):
        raise TunelabError(f"prompt file {path.name}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    if not isinstance(data.get("template"), str):
        raise TunelabError(f"prompt file {path.name}: 'template' is required and must be a string")
    for key in ("name", "system", "mode"):
        if key in data and not isinstance(data[key], str):
            raise TunelabError(f"prompt file {path.name}: '{key}' must be a string, got {type(data[key]).__name__}")
    if not isinstance(data.get("params", {}), dict):
        raise TunelabError(f"prompt file {path.name}: [params] must be a table of decoding settings")
    try:
        shots = None
        if data.get("shots"):
            shots = Shots.from_dict({"k": data["shots"], **{k: data[k] for k in SHOT_KEYS[1:] if k in data}})
        version = PromptVersion(
            data["template"],
            data.get("system", ""),
            data.get("mode", "auto"),
            {**GenParams().to_dict(), **data.get("params", {})},
            shots,
        )
    except TunelabError as exc:
        raise TunelabError(f"prompt file {path.name}: {exc}") from None
    return str(data.get("name") or path.stem), version


class PromptStore:
    def __init__(self, root: Path) -> None:
        self.meta = Meta(root)

    def save(self, name: str, version: PromptVersion) -> str:
        """Record `version` under `name` (idempotent); returns its id."""
        vid = version.id

        def change(db):
            table = db.table(TABLE)
            q = Query()
            if not table.contains((q.id == vid) & (q.name == name)):
                table.insert({"id": vid, "name": name, "created_at": now_iso(), **version.to_dict()})

        self.meta.write(change)
        return vid

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Newest first; numbered per name from 1 (the oldest)."""
        rows = self.meta.read(TABLE)
        counters: dict[str, int] = {}
        for row in rows:  # insertion order is creation order
            counters[row["name"]] = counters.get(row["name"], 0) + 1
            row["number"] = counters[row["name"]]
        rows = [r for r in rows if name is None or r["name"] == name]
        return rows[::-1]

    def get(self, ref: str) -> tuple[dict[str, Any], PromptVersion]:
        """`name` (latest), `name@N` (N-th version), `name@ID` (as eval labels show it: an id prefix), or
        an id or unique id prefix."""
        rows = self.versions()
        name, _, number = ref.partition("@")
        if number:
            hits = [r for r in rows if r["name"] == name and str(r["number"]) == number]
            if not hits and len(number) >= 4:
                hits = list({r["id"]: r for r in rows if r["name"] == name and r["id"].startswith(number)}.values())
        else:
            hits = [r for r in rows if r["name"] == ref][:1] or list(
                {r["id"]: r for r in rows if len(ref) >= 4 and r["id"].startswith(ref)}.values()
            )
        if not hits:
            raise TunelabError(f"no prompt version '{ref}' (see `tunelab prompts list`)")
        if len(hits) > 1:
            raise TunelabError(f"prompt reference '{ref}' is ambiguous ({', '.join(r['id'] for r in hits[:4])})")
        row = hits[0]
        return row, PromptVersion.from_dict(row)

    def diff(self, a: str, b: str) -> str:
        (ra, va), (rb, vb) = self.get(a), self.get(b)
        label = lambda r: f"{r['name']}@{r['number']} ({r['id']})"  # noqa: E731
        return "".join(
            difflib.unified_diff(
                va.as_text().splitlines(True), vb.as_text().splitlines(True), fromfile=label(ra), tofile=label(rb)
            )
        )


def item_prompt(
    version: PromptVersion | None, item: Item, mode: str | None = None, demos: Sequence[Item] = ()
) -> Prompt:
    """With a version: its templates filled from the item, after its demonstrations (`demos`: chat turns, or
    rendered examples in raw mode). Without: the item's own input as is, raw text (or its chat turns), or in
    `mode` when given: exactly what a LoRA trained without a template saw."""
    if version is not None:
        separator = version.shots.separator if version.shots is not None else "\n\n"
        text, system, turns = demo_prompt(version.template, version.system, version.mode, separator, item, list(demos))
        return Prompt(text, system, version.mode, turns)
    if item.messages:
        return Prompt("", mode=mode or "auto", messages=item.messages)
    v = item.vars
    if "instruction" in v:
        text = v["instruction"] + (f"\n\n{v['input']}" if v.get("input") else "")
    else:
        text = v.get("input") or v.get("text") or next(iter(v.values()), "")
    return Prompt(text, v.get("system", ""), mode or "raw")
