"""Test-case datasets from JSONL or CSV: alpaca rows, chat `messages`, or plain `{vars..., expected}`.

A dataset spec is `demo` (the shipped task), a folder of split files (`train.jsonl`, `eval.csv`, ...),
or one file whose rows may carry a `split` field. Every error names the file and line (and the field).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import demo
from core.errors import TunelabError
from core.evals.templates import Template
from core.storage.text import decode_utf8, jsonl_objects

SUFFIXES = (".jsonl", ".csv")
EXPECTED_GUESSES = ("expected", "output", "label", "answer", "target")
RESERVED = {"id", "split"}
csv.field_size_limit(2**31 - 1)  # long single-line fields are data, not an attack on a local tool


@dataclass(frozen=True)
class Item:
    id: str
    vars: dict[str, str]
    expected: str | None
    where: str  # "file:line", for errors about this row
    split: str | None = None
    messages: tuple[dict[str, str], ...] = ()  # chat rows: the prompt turns


@dataclass
class Dataset:
    name: str
    format: str  # plain | alpaca | chat
    items: list[Item]
    expected_field: str | None
    sha256: str
    splits: tuple[str, ...] = field(default=())

    def split(self, name: str | None) -> list[Item]:
        if name is None:
            return self.items
        if name not in self.splits:
            raise TunelabError(
                f"dataset {self.name} has no split '{name}' (splits: {', '.join(self.splits) or 'none'})"
            )
        return [it for it in self.items if it.split == name]

    def check_template(self, template: Template, items: list[Item] | None = None) -> None:
        """Every row must give every variable: the first row that does not is named."""
        for item in items if items is not None else self.items:
            missing = [v for v in template.variables if v not in item.vars]
            if missing:
                raise TunelabError(
                    f"{item.where}: template variable '{{{{{missing[0]}}}}}' has no value "
                    f"(fields: {', '.join(sorted(item.vars)) or 'none'})"
                )


def load_dataset(spec: str, *, expected: str | None = None, mapping: Mapping[str, str] | None = None) -> Dataset:
    """Load all rows of `spec`; `expected` names the answer field, `mapping` adds var=field aliases."""
    path = demo.TASK_DIR if spec == "demo" else Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        if not files:
            raise TunelabError(f"dataset folder {path} has no .jsonl or .csv files")
    elif path.is_file():
        files = [path]
    else:
        raise TunelabError(f"dataset not found: {path}")
    items: list[Item] = []
    digest = hashlib.sha256()
    fmt, field_name = "plain", expected
    for file in files:
        data = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + data)
        split = file.stem if path.is_dir() else None
        rows = list(_rows(file, data))
        if not rows:
            raise TunelabError(f"{file.name}: no rows")
        fmt = _detect(rows[0][1])
        field_name = expected or _guess_expected(fmt, rows[0][1])
        items.extend(_item(file.name, line, row, fmt, field_name, split, mapping or {}) for line, row in rows)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TunelabError(f"dataset {path.name}: id '{dup}' appears more than once")
    splits = tuple(dict.fromkeys(it.split for it in items if it.split))
    return Dataset(spec if spec == "demo" else path.name, fmt, items, field_name, digest.hexdigest(), splits)


def _rows(file: Path, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    text = decode_utf8(file.name, data)
    if file.suffix == ".csv":
        yield from _csv_rows(file.name, text)
    else:
        yield from jsonl_objects(file.name, text)


def _csv_rows(name: str, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    if not reader.fieldnames:
        return
    if len(set(reader.fieldnames)) != len(reader.fieldnames) or any(not f.strip() for f in reader.fieldnames):
        raise TunelabError(f"{name}:1: column names must be unique and non-empty")
    start = 2
    try:
        for row in reader:
            if "\0extra" in row:
                raise TunelabError(f"{name}:{start}: more values than columns")
            missing = [k for k, v in row.items() if v is None]
            if missing:
                raise TunelabError(f"{name}:{start}: missing value for column '{missing[0]}'")
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TunelabError(f"{name}:{reader.line_num}: bad CSV ({exc})") from None


def _detect(row: dict[str, Any]) -> str:
    if "messages" in row:
        return "chat"
    if "instruction" in row:
        return "alpaca"
    return "plain"


def _guess_expected(fmt: str, row: dict[str, Any]) -> str | None:
    if fmt == "chat":
        return None  # the last assistant turn
    if fmt == "alpaca":
        return "output"
    return next((f for f in EXPECTED_GUESSES if f in row), None)


def _text(where: str, name: str, value: Any) -> str:
    if value is None:
        raise TunelabError(f"{where}: field '{name}' is null")
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _item(
    name: str,
    line: int,
    row: dict[str, Any],
    fmt: str,
    expected_field: str | None,
    split: str | None,
    mapping: Mapping[str, str],
) -> Item:
    where = f"{name}:{line}"
    messages: tuple[dict[str, str], ...] = ()
    expected: str | None = None
    if fmt == "chat":
        messages, expected = _chat(where, row.get("messages"))
        variables = {"input": messages[-1]["content"]}
        if messages[0]["role"] == "system":
            variables["system"] = messages[0]["content"]
    else:
        if expected_field is not None:
            if expected_field not in row:
                raise TunelabError(f"{where}: missing field '{expected_field}'")
            expected = _text(where, expected_field, row[expected_field])
        variables = {
            k: _text(where, k, v)
            for k, v in row.items()
            if k not in RESERVED and k != expected_field and k != "messages"
        }
    for var, source in mapping.items():
        if source not in row:
            raise TunelabError(f"{where}: missing field '{source}' (mapped to variable '{var}')")
        variables[var] = _text(where, source, row[source])
    row_split = row.get("split")
    if row_split is not None and not isinstance(row_split, str):
        raise TunelabError(f"{where}: field 'split' must be a string")
    item_id = row.get("id", f"{Path(name).stem}:{line}")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise TunelabError(f"{where}: field 'id' must be a string or integer")
    return Item(str(item_id), variables, expected, where, split or row_split, messages)


def _chat(where: str, messages: Any) -> tuple[tuple[dict[str, str], ...], str | None]:
    if not isinstance(messages, list) or not messages:
        raise TunelabError(f"{where}: field 'messages' must be a non-empty list")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise TunelabError(f"{where}: messages[{i}] needs string 'role' and 'content'")
        turns.append({"role": m["role"], "content": m["content"]})
    expected = None
    if turns[-1]["role"] == "assistant":
        expected = turns.pop()["content"]
    if not turns or turns[-1]["role"] != "user":
        raise TunelabError(f"{where}: field 'messages' must end with a user turn (or user then assistant)")
    return tuple(turns), expected
