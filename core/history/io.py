"""Moving history in and out: JSONL/CSV export, JSONL import without duplicates, and labelled outputs as
training data (the `{"id", "text", "system", "expected"}` rows that `core.data.datasets` and the training form read).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core.errors import TunelabError
from core.history.query import HistoryQuery
from core.history.store import History, iso_time, label_of
from core.storage.atomic import writable, write_atomic
from core.storage.text import decode_utf8, jsonl_objects

if TYPE_CHECKING:
    from core.storage.schemas import EvalHeadline

CSV_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "status",
    "model",
    "adapter",
    "prompt_name",
    "mode",
    "system",
    "prompt",
    "output",
    "label",
    "correction",
    "tags",
    "starred",
    "note",
    "completion_tokens",
    "latency_s",
    "ref",
)
FORMATS = ("jsonl", "csv", "training")


def _write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO, columns: tuple[str, ...]) -> int:
    """JSONL (whole rows) or CSV (these columns, None as empty); returns how many rows."""
    writer = csv.DictWriter(out, columns, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    count = 0
    for row in rows:
        if writer:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_records(records: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write records as JSONL (whole records), CSV (CSV_COLUMNS) or training rows; returns how many."""
    if fmt not in FORMATS:
        raise TunelabError(f"export format must be {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "training":
        return _write_rows(training_rows(records), "jsonl", out, ())
    if fmt == "csv":
        records = ({**r, "label": label_of(r), "tags": " ".join(r.get("tags") or ())} for r in records)
    return _write_rows(records, fmt, out, CSV_COLUMNS)


EVAL_COLUMNS = (
    "run",
    "variant",
    "label",
    "item",
    "repeat",
    "expected",
    "output",
    "passed",
    "score",
    "latency_s",
    "completion_tokens",
    "cached",
)


def eval_rows(root: Path, summary: EvalHeadline) -> Iterator[dict[str, Any]]:
    """An eval run's graded rows (`evals/<id>/results.jsonl`) with the run id and variant label added;
    a last line cut short by a crash is skipped."""
    labels = [v.label for v in summary.variants]
    path = Path(root) / "evals" / summary.id / "results.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TunelabError(f"eval run {summary.id}: results unreadable ({exc.strerror})") from None
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        yield {
            "run": summary.id,
            "label": labels[row["variant"]] if row.get("variant") in range(len(labels)) else "",
            **row,
        }


def write_eval_rows(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    if fmt not in ("jsonl", "csv"):
        raise TunelabError(f"eval export format must be jsonl or csv, got {fmt!r}")
    return _write_rows(rows, fmt, out, EVAL_COLUMNS)


def export_history(
    history: History, query: HistoryQuery, fmt: str, path: Path | None = None, out: TextIO | None = None
) -> int:
    """Matching records to `out`, or to `path` written whole (temp file, then rename: no half files)."""
    if path is None:
        return write_records(history.iter_matching(query), fmt, out or io.StringIO())
    path = Path(path).expanduser()
    buffer = io.StringIO()
    count = write_records(history.iter_matching(query), fmt, buffer)
    with writable(str(path)):
        write_atomic(path, buffer.getvalue())
    return count


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    """Every line must be a record object with a string id; the first bad one is named by file:line."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TunelabError(f"{path}: no such file") from None
    except OSError as exc:
        raise TunelabError(f"{path}: cannot read ({exc.strerror})") from None
    records = []
    for number, record in jsonl_objects(path.name, decode_utf8(path.name, data)):
        rid = record.get("id")
        if not isinstance(rid, str) or not rid or not all(c in "0123456789abcdef" for c in rid):
            raise TunelabError(f"{path.name}:{number}: field 'id' must be a lower-case hex string")
        if "created_at" in record and iso_time(record["created_at"]) is None:
            raise TunelabError(f"{path.name}:{number}: field 'created_at' must be an ISO date-time")
        records.append(record)
    return records


def import_history(history: History, path: Path) -> tuple[int, int]:
    """Add the file's records whose ids are not stored yet; returns (added, skipped)."""
    records = read_jsonl_records(path)
    for record in records:
        record.pop("blobs", None)  # exported records carry their full text
    added = history.add_many(records, skip_known=True)  # known ids checked under the writer lock
    return len(added), len(records) - len(added)


def training_rows(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Generations a person marked good (their output) or corrected (the correction), as training rows."""
    for record in records:
        if record.get("kind", "generation") != "generation" or not record.get("prompt"):
            continue
        answer = record.get("correction") or (record.get("output") if record.get("label") == "good" else None)
        if not answer:
            continue
        row = {"id": record["id"], "text": record["prompt"], "expected": answer}
        if record.get("system"):
            row["system"] = record["system"]
        yield row


def add_to_dataset(history: History, query: HistoryQuery, target: Path) -> int:
    """Append the labelled rows to a dataset file (a folder means its `train.jsonl`), skipping ids already there.

    Appends whole lines only, so the rows already in the file are never rewritten.
    """
    target = Path(target).expanduser()
    if target.is_dir() or not target.suffix:
        target = target / "train.jsonl"
    if target.suffix != ".jsonl":
        raise TunelabError(f"{target}: labelled rows can be added to a .jsonl file or a dataset folder")
    present: set[str] = set()
    ends_clean = True
    if target.exists():
        text = target.read_text(encoding="utf-8-sig", errors="replace")
        ends_clean = not text or text.endswith("\n")
        for line in text.splitlines():
            try:
                present.add(str(json.loads(line).get("id")))
            except (ValueError, AttributeError):
                continue
    rows = [r for r in training_rows(history.iter_matching(query)) if r["id"] not in present]
    if rows:
        with writable(str(target)):
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(("" if ends_clean else "\n") + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                fh.flush()
                os.fsync(fh.fileno())
    return len(rows)
