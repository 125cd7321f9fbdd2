"""Reading text files users bring: UTF-8 (with or without a BOM) and JSON lines, errors naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from core.errors import TunelabError


def decode_utf8(name: str, data: bytes) -> str:
    """UTF-8 with or without a BOM; otherwise one line naming the file, line and byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TunelabError(f"{name}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x})") from None


def jsonl_objects(name: str, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; the first line that is not an object is named."""
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TunelabError(f"{name}:{line}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict):
            raise TunelabError(f"{name}:{line}: expected a JSON object, got {type(row).__name__}")
        yield line, row
