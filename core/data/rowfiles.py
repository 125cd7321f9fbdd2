"""Rows from the data files other tools write: JSONL, JSON arrays (LLaMA-Factory, Alpaca), CSV/TSV, Parquet.

Each reader yields `(where, row)`, where `where` names the file and line (`data.jsonl:12`) or array index
(`data.json[11]`) for every error about that row. A `.json` file that holds JSON Lines is read as such.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.storage.text import decode_utf8, jsonl_objects

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow")  # .arrow: `datasets`' save_to_disk
MAX_FILE_BYTES = 4 * 2**30  # a data file larger than this is refused before it is read
csv.field_size_limit(2**31 - 1)  # long single-line fields are data, not an attack on a local tool

Rows = Iterator[tuple[str, dict[str, Any]]]


def read_rows(file: Path, name: str | None = None) -> tuple[bytes, Rows]:
    """The file's bytes (for the dataset's fingerprint) and its rows, each named `name:line` (the file's
    name unless given: a split folder's file is `train/data-00000-of-00001.arrow`)."""
    name = name or file.name
    if file.suffix not in SUFFIXES:
        raise TunelabError(f"{name}: not a data file tunelab reads (use {', '.join(SUFFIXES)})")
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TunelabError(f"{name}: {size / 2**30:.1f} GiB is over the {MAX_FILE_BYTES // 2**30} GiB limit")
        data = file.read_bytes()
    except OSError as exc:
        raise TunelabError(f"{file}: {exc.strerror or exc}") from None
    if file.suffix == ".parquet":
        return data, _parquet_rows(name, data)
    if file.suffix == ".arrow":
        return data, _arrow_rows(name, data)
    text = decode_utf8(name, data)
    if file.suffix in (".csv", ".tsv"):
        return data, _csv_rows(name, text, "\t" if file.suffix == ".tsv" else ",")
    if file.suffix == ".json":
        return data, _json_rows(name, text)
    return data, ((f"{name}:{line}", row) for line, row in jsonl_objects(name, text))


def _json_rows(name: str, text: str) -> Rows:
    """A JSON array of objects, an object holding one such array (`{"data": [...]}`), or JSON Lines."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):  # JSON Lines named .json
            yield from ((f"{name}:{line}", row) for line, row in jsonl_objects(name, text))
            return
        raise TunelabError(f"{name}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise TunelabError(f"{name}: JSON nested too deeply") from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise TunelabError(f"{name}: expected a JSON array of rows (or an object holding one array)")
        value = lists[0]
    if not isinstance(value, list):
        raise TunelabError(f"{name}: expected a JSON array of rows, got {type(value).__name__}")
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise TunelabError(f"{name}[{index}]: expected a JSON object, got {type(row).__name__}")
        yield f"{name}[{index}]", row


def _csv_rows(name: str, text: str, delimiter: str) -> Rows:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra", delimiter=delimiter)
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
            yield f"{name}:{start}", row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TunelabError(f"{name}:{reader.line_num}: bad CSV ({exc})") from None


def _arrow_rows(name: str, data: bytes) -> Rows:
    """An Arrow IPC stream (as `datasets` saves a split) or file."""
    try:
        import pyarrow as pa
    except ImportError:
        raise TunelabError(f"{name}: reading Arrow files needs pyarrow (pip install pyarrow)") from None
    try:
        table = pa.ipc.open_stream(data).read_all()
    except Exception:  # not a stream: maybe the random-access file format
        try:
            table = pa.ipc.open_file(data).read_all()
        except Exception as exc:
            raise TunelabError(f"{name}: not a readable Arrow file ({str(exc).splitlines()[0]})") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"{name}[{index}]", row


def _parquet_rows(name: str, data: bytes) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TunelabError(f"{name}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises its own error types for every kind of damage
        raise TunelabError(f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"{name}[{index}]", row
