"""Generation, eval and training history in TinyDB, sharded and indexed so it stays fast at 100k records.

Layout under `<data>/history/` (format 2, see `FORMAT`):
- `gen-NNNNNN.json`: a TinyDB file of at most SHARD_SIZE full records. An insert rewrites only the
  newest shard, atomically and under the writer lock, so its cost does not grow with the history.
- `gen-NNNNNN.idx`: that shard's index, newest first, one line per record: a small JSON row (what a list
  shows and filters on) then a tab and the record's lower-cased search text. Paging reads the newest
  index files only; a search scans index lines as bytes and parses only the lines that match. The
  header names the shard's size and mtime: an index that does not match its shard is rebuilt from it.
- `blobs/<id>.<field>`: text fields over BLOB_LIMIT, kept apart so a huge output never makes every
  later insert into its shard rewrite megabytes (the record and search text keep the first BLOB_LIMIT).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from core.errors import TunelabError
from core.history.query import HistoryQuery
from core.storage.atomic import LOCK_TIMEOUT, AtomicJSONStorage, StoreCorrupt, writable, write_atomic, writer_lock
from core.storage.paths import ensure_private_dir

FORMAT_VERSION = 2
SHARD_SIZE = 200
BLOB_LIMIT = 64 * 1024
BLOB_FIELDS = ("prompt", "system", "output", "rendered_prompt", "correction")
SEARCH_FIELDS = ("prompt", "system", "output", "correction", "note")
PREVIEW = 100
MARK = "\x1f"  # before kind:/is:/label: marks in search text; typed words never contain it
SHARD_NAME = re.compile(r"^gen-(\d{6})\.json$")
ROW_START = rb'^\{"created_at":"[^"]*","id":"('  # an index line's start, up to its id
ALL_IDS = re.compile(ROW_START + rb'[^"]+)"', re.M)
EDITABLE = {"tags", "starred", "note", "label", "correction"}


def new_id() -> str:
    """Time-ordered, unique across processes: sorting ids sorts by creation."""
    return f"{time.time_ns():x}{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_time(value: Any) -> str | None:
    """`value` when it is an ISO date-time (all the index's byte-level date checks can read), else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return None
    return value


def label_of(record: dict[str, Any]) -> str | None:
    """A correction is the strongest human label; otherwise good, bad or none."""
    return "corrected" if record.get("correction") else record.get("label")


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def index_row(record: dict[str, Any]) -> dict[str, Any]:
    """The small row a list shows and a filter checks; `created_at` comes first (date checks read bytes).
    Fields are coerced to their types, so an imported record of any shape lists like the others."""

    def preview(name: str) -> str:
        return " ".join(str(record.get(name) or "")[: PREVIEW * 2].split())[:PREVIEW]

    def number(name: str) -> float | None:
        value = record.get(name)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    tags = record.get("tags")
    return {
        "created_at": iso_time(record.get("created_at")) or "",
        "id": record["id"],
        "kind": str(record.get("kind") or "generation"),
        "status": _text_or_none(record.get("status")),
        "model": _text_or_none(record.get("model")),
        "adapter": _text_or_none(record.get("adapter")),
        "prompt_name": _text_or_none(record.get("prompt_name")),
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "starred": bool(record.get("starred")),
        "label": _text_or_none(label_of(record)),
        "note": bool(record.get("note")),
        "prompt": preview("prompt"),
        "output": preview("output"),
        "tokens": number("completion_tokens"),
        "latency_s": number("latency_s"),
        "ref": _text_or_none(record.get("ref")),
    }


def search_text(record: dict[str, Any], row: dict[str, Any]) -> str:
    """Everything a search word or filter needle can hit, lower-cased, on one line."""
    parts = [str(record.get(name) or "") for name in SEARCH_FIELDS]
    parts += [f"#{t}" for t in row["tags"]]
    parts += [str(row.get(k) or "") for k in ("model", "adapter", "prompt_name", "status")]
    marks = [f"kind:{row['kind']}"] + ["is:starred"] * row["starred"]
    marks += ["label:any", f"label:{row['label']}"] if row["label"] else []
    return " ".join(" ".join(parts).split()).lower() + "".join(MARK + m for m in marks)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    cursor: tuple[int, int] | None  # where the next page starts; None at the end


class History:
    def __init__(self, root: Path, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.folder = ensure_private_dir(Path(root) / "history")
        self.lock_timeout = lock_timeout
        self.problems: list[str] = []  # corrupt shards met while reading, by name
        self.unusable: str | None = None  # a store this tunelab cannot read: shown, never written
        try:
            self._migrate()
        except TunelabError as exc:
            self.unusable = str(exc)
            self.problems.append(self.unusable)

    # -- layout -----------------------------------------------------------------------------------
    def _shards(self) -> list[Path]:
        if self.unusable:
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := SHARD_NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    @staticmethod
    def _number(shard: Path) -> int:
        """A shard's number (its paths come from `_shards` or `_shard`, so the name always matches)."""
        match = SHARD_NAME.match(shard.name)
        if match is None:
            raise ValueError(f"not a history shard: {shard.name}")
        return int(match.group(1))

    def _shard(self, number: int) -> Path:
        return self.folder / f"gen-{number:06d}.json"

    @staticmethod
    def _db(path: Path) -> TinyDB:
        return TinyDB(path, storage=AtomicJSONStorage)

    def _problem(self, exc: Exception) -> None:
        if str(exc) not in self.problems:
            self.problems.append(str(exc))

    def _docs(self, shard: Path) -> list[dict[str, Any]] | None:
        try:
            return [dict(d) for d in self._db(shard).all()]
        except StoreCorrupt as exc:
            self._problem(exc)
            return None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The writer lock (waiting at most lock_timeout, then naming the holder); failed writes are one line."""
        if self.unusable:
            raise TunelabError(self.unusable)
        with writable(f"history in {self.folder}"), writer_lock(self.folder, timeout=self.lock_timeout):
            for stale in [*self.folder.glob(".*.tmp"), *self.folder.glob("blobs/.*.tmp")]:
                stale.unlink(missing_ok=True)  # left by a writer killed mid-write: we hold the lock now
            yield

    # -- format and migration ---------------------------------------------------------------------
    def _format(self) -> int:
        marker = self.folder / "FORMAT"
        if not marker.exists():
            return 1 if self._shards() else FORMAT_VERSION
        try:
            version = json.loads(marker.read_text())["format"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TunelabError(f'{marker}: unreadable format marker ({exc}); expected {{"format": N}}') from None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise TunelabError(
                f'{marker}: format must be a whole number from 1, got {version!r}; expected {{"format": N}}'
            )
        return version

    def _migrate(self) -> None:
        """Bring an older store up to FORMAT_VERSION once, step by step; refuse a newer one."""
        version = self._format()
        if version > FORMAT_VERSION:
            raise TunelabError(
                f"history in {self.folder} has format {version}, newer than this tunelab "
                f"understands ({FORMAT_VERSION}); upgrade tunelab"
            )
        if version == FORMAT_VERSION:
            return
        with self._writing():
            version = self._format()
            while version < FORMAT_VERSION:
                MIGRATIONS[version](self)
                version += 1
                write_atomic(self.folder / "FORMAT", json.dumps({"format": version}))

    # -- the index --------------------------------------------------------------------------------
    def _index_path(self, shard: Path) -> Path:
        return shard.with_suffix(".idx")

    @staticmethod
    def _stamp(shard: Path) -> dict[str, int]:
        st = shard.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def _build_index(self, shard: Path, docs: list[dict[str, Any]]) -> list[bytes]:
        lines = []
        for doc in sorted((d for d in docs if isinstance(d.get("id"), str)), key=lambda d: d["id"], reverse=True):
            row = index_row(doc)
            lines.append(json.dumps(row, separators=(",", ":")).encode() + b"\t" + search_text(doc, row).encode())
        return lines

    def _write_index(self, shard: Path, docs: list[dict[str, Any]]) -> list[bytes]:
        lines = self._build_index(shard, docs)
        header = json.dumps({"format": FORMAT_VERSION, **self._stamp(shard)}).encode()
        write_atomic(self._index_path(shard), b"\n".join([header, *lines]).decode())
        return lines

    def _index_body(self, shard: Path) -> bytes | None:
        """A shard's index lines (one bytes block), rebuilt from the shard when missing or stale;
        None when the shard is corrupt."""
        try:
            data = self._index_path(shard).read_bytes()
            header, _, body = data.partition(b"\n")
            if json.loads(header) == {"format": FORMAT_VERSION, **self._stamp(shard)}:
                return body
        except (OSError, ValueError):
            pass
        docs = self._docs(shard)
        if docs is None:
            return None
        try:
            with writer_lock(self.folder, timeout=0):  # repair it when nobody is writing; else next time
                return b"\n".join(self._write_index(shard, docs))
        except (TunelabError, OSError):
            return b"\n".join(self._build_index(shard, docs))

    # -- writing ----------------------------------------------------------------------------------
    def _keep_blobs(self, record: dict[str, Any]) -> None:
        for name in BLOB_FIELDS:
            value = record.get(name)
            if isinstance(value, str) and len(value) > BLOB_LIMIT:
                blobs = ensure_private_dir(self.folder / "blobs")
                write_atomic(blobs / f"{record['id']}.{name}", value)
                record[name] = value[:BLOB_LIMIT]
                record.setdefault("blobs", []).append(name)

    def add(self, record: dict[str, Any]) -> str:
        """Store one record (an `id` and `created_at` are added when missing); returns its id."""
        return self.add_many([record])[0]

    def add_many(self, records: Iterable[dict[str, Any]], *, skip_known: bool = False) -> list[str]:
        """Store records in order, filling the newest shard and then new ones; each shard written once.

        `skip_known` (imports) leaves out records whose id is stored already or repeats in the batch,
        checked under the writer lock, so two imports of one file at once add each record once."""
        batch = [{"id": new_id(), "created_at": now_iso(), **r} for r in records]
        with self._writing():
            if skip_known:
                known, fresh = self.ids(), []
                for record in batch:
                    if record["id"] not in known:
                        known.add(record["id"])
                        fresh.append(record)
                batch = fresh
            if not batch:
                return []
            if not (self.folder / "FORMAT").exists():
                write_atomic(self.folder / "FORMAT", json.dumps({"format": FORMAT_VERSION}))
            for record in batch:
                self._keep_blobs(record)
            shards = self._shards()
            number = self._number(shards[-1]) if shards else 1
            docs = self._docs(self._shard(number)) if shards else []
            if docs is None:  # never append to (and so overwrite) a damaged shard
                number, docs = number + 1, []
            pending = list(batch)
            while pending:
                if len(docs) >= SHARD_SIZE:
                    number, docs = number + 1, []
                take, pending = pending[: SHARD_SIZE - len(docs)], pending[SHARD_SIZE - len(docs) :]
                shard = self._shard(number)
                self._db(shard).insert_multiple(take)
                docs = docs + take
                self._write_index(shard, docs)
        return [r["id"] for r in batch]

    def update(
        self,
        record_id: str,
        shard: int | None = None,
        *,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        **changes: Any,
    ) -> dict[str, Any]:
        """Set tags, star, note, label (good/bad/None) or correction on one record; returns it.
        `add_tags`/`remove_tags` change the tags as stored when the lock is held, so concurrent taggers
        lose nothing."""
        unknown = set(changes) - EDITABLE
        if unknown:
            raise TunelabError(
                f"cannot edit field(s) {', '.join(sorted(unknown))} (editable: {', '.join(sorted(EDITABLE))})"
            )
        if changes.get("label") not in (None, "good", "bad"):
            raise TunelabError(f"label must be good, bad or none, got {changes['label']!r}")
        if "tags" in changes:
            changes["tags"] = sorted(_tags(changes["tags"]))
        with self._writing():
            path, record = self._locate(record_id, shard)
            if add_tags or remove_tags:
                current = set(changes.get("tags", record.get("tags") or ()))
                changes["tags"] = sorted((current | _tags(add_tags)) - _tags(remove_tags))
            self._db(path).update(changes, Query().id == record["id"])
            self._write_index(path, self._docs(path) or [])
        record.update(changes)
        return self._with_blobs(record)

    # -- reading ----------------------------------------------------------------------------------
    def search(
        self, query: HistoryQuery | None = None, limit: int = 100, cursor: tuple[int, int] | None = None
    ) -> Page:
        """Index rows matching `query`, newest first; pass the returned cursor for the next page.

        The longest needle is found with bytes.find over a whole index file, so only lines that
        contain it cost Python work; `cursor` is (shard number, byte offset in its index).
        """
        query = query or HistoryQuery()
        needles = query.needles()
        first, rest = (needles[0], needles[1:]) if needles else (None, [])
        since = query.since.encode() if query.since else None
        until = query.until.encode() if query.until else None
        rows: list[dict[str, Any]] = []
        for shard in reversed(self._shards()):
            number = self._number(shard)
            if cursor and number > cursor[0]:
                continue
            body = self._index_body(shard)
            if not body:
                continue
            pos = cursor[1] if cursor and number == cursor[0] else 0
            while pos < len(body):
                if first is not None:
                    hit = body.find(first, pos)
                    if hit < 0:
                        break
                    start = body.rfind(b"\n", pos, hit) + 1 or pos
                else:
                    start = pos
                end = body.find(b"\n", start)
                end = len(body) if end < 0 else end
                pos = end + 1
                day = body[start + 15 : start + 25]  # {"created_at":"YYYY-MM-DD
                if (since and day < since) or (until and day > until):
                    continue
                line = body[start:end]
                if any(n not in line for n in rest):
                    continue
                tab = line.find(b"\t")
                row = _index_line(line[:tab]) if tab > 0 else None
                if row is None:  # a damaged index (its header intact): rebuilt from the shard on the next read
                    self._index_path(shard).unlink(missing_ok=True)
                    self._problem(TunelabError(f"index {self._index_path(shard).name} was damaged; rebuilt"))
                    continue
                if query.matches(row, line[tab + 1 :]):
                    row["shard"] = number
                    rows.append(row)
                    if len(rows) >= limit:
                        return Page(rows, (number, pos))
        return Page(rows, None)

    def iter_matching(self, query: HistoryQuery | None = None) -> Iterator[dict[str, Any]]:
        """Full records matching `query`, newest first (for export)."""
        cursor: tuple[int, int] | None = None
        by_shard: dict[int, dict[str, dict[str, Any]]] = {}
        while True:
            page = self.search(query, limit=500, cursor=cursor)
            for row in page.rows:
                if row["shard"] not in by_shard:
                    by_shard.clear()
                    by_shard[row["shard"]] = {
                        d["id"]: d for d in self._docs(self._shard(row["shard"])) or [] if "id" in d
                    }
                doc = by_shard[row["shard"]].get(row["id"])
                if doc is not None:
                    yield self._with_blobs(doc)
            if page.cursor is None:
                return
            cursor = page.cursor

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        out = []
        for record in self.iter_matching():
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def ids(self) -> set[str]:
        found: set[str] = set()
        for shard in self._shards():
            found.update(m.decode() for m in ALL_IDS.findall(self._index_body(shard) or b""))
        return found

    def resolve(self, prefix: str) -> str:
        """A full record id from a unique prefix (at least 6 characters)."""
        prefix = prefix.strip()
        if not re.fullmatch(r"[0-9a-f]{6,40}", prefix):
            raise TunelabError(f"'{prefix}' is not a history record id (hex, at least 6 characters)")
        pattern = re.compile(ROW_START + prefix.encode() + rb'[0-9a-f]*)"', re.M)
        hits: set[str] = set()
        for shard in reversed(self._shards()):
            hits.update(m.decode() for m in pattern.findall(self._index_body(shard) or b""))
            if len(hits) > 1 or (hits and len(prefix) >= 20):  # ids are 22 characters: a full one is unique
                break
        if not hits:
            raise TunelabError(f"no history record with id {prefix}")
        if len(hits) > 1:
            raise TunelabError(f"history id {prefix} is ambiguous ({', '.join(sorted(hits)[:3])}, ...)")
        return hits.pop()

    def _locate(self, record_id: str, shard: int | None = None) -> tuple[Path, dict[str, Any]]:
        """The record's shard and document; `shard` (from a search row) skips the id lookup."""
        if shard is not None:
            path = self._shard(shard)
            found = (
                next((d for d in self._docs(path) or [] if d.get("id") == record_id), None) if path.exists() else None
            )
            if found is not None:
                return path, found
        full = self.resolve(record_id)
        needle = f'"id":"{full}"'.encode()
        for path in reversed(self._shards()):
            if needle in (self._index_body(path) or b""):
                for doc in self._docs(path) or []:
                    if doc.get("id") == full:
                        return path, doc
        raise TunelabError(f"no history record with id {record_id}")

    def _with_blobs(self, record: dict[str, Any]) -> dict[str, Any]:
        for name in record.get("blobs") or ():
            try:
                record[name] = (self.folder / "blobs" / f"{record['id']}.{name}").read_text(encoding="utf-8")
            except OSError as exc:
                self._problem(
                    TunelabError(f"blob {record['id']}.{name} unreadable ({exc.strerror}); kept the first part")
                )
        return record

    def get(self, record_id: str, shard: int | None = None) -> dict[str, Any] | None:
        try:
            _, record = self._locate(record_id, shard)
        except TunelabError:
            return None
        return self._with_blobs(record)


def _index_line(data: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(data)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("id"), str) else None


def _tags(tags: Iterable[Any]) -> set[str]:
    return {str(t).strip().lstrip("#") for t in tags if str(t).strip().lstrip("#")}


def _index_all(history: History) -> None:
    """Format 1 -> 2: format 1 had shards only; build each shard's index."""
    for shard in history._shards():
        docs = history._docs(shard)
        if docs is not None:
            history._write_index(shard, docs)


MIGRATIONS: dict[int, Callable[[History], None]] = {1: _index_all}
