"""Generation history in TinyDB, sharded so an insert rewrites one small file, not the whole past.

Layout under `<data>/history/`: `gen-000001.json`, `gen-000002.json`, ... each a TinyDB file of at
most SHARD_SIZE records, written atomically under the writer lock. Newest records live in the
highest-numbered shard, so the first page reads one or two small files.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from tinydb import Query, TinyDB

from core.paths import ensure_private_dir
from core.storage import AtomicJSONStorage, StoreCorrupt, writer_lock

SHARD_SIZE = 200
SHARD_NAME = re.compile(r"^gen-(\d{6})\.json$")


def new_id() -> str:
    """Time-ordered, unique across processes: sorting ids sorts by creation."""
    return f"{time.time_ns():x}{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class History:
    def __init__(self, root: Path) -> None:
        self.folder = ensure_private_dir(Path(root) / "history")
        self.problems: list[str] = []  # corrupt shards met while reading, by name

    def _shards(self) -> list[Path]:
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := SHARD_NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    @staticmethod
    def _db(path: Path) -> TinyDB:
        return TinyDB(path, storage=AtomicJSONStorage)

    def add(self, record: dict[str, Any]) -> str:
        """Store one record (an `id` and `created_at` are added when missing); returns its id."""
        record = {"id": new_id(), "created_at": now_iso(), **record}
        with writer_lock(self.folder):
            shards = self._shards()
            target = shards[-1] if shards else self.folder / "gen-000001.json"
            try:
                full = len(self._db(target)) >= SHARD_SIZE
            except StoreCorrupt as exc:  # never append to (and so overwrite) a damaged shard
                self.problems.append(str(exc))
                full = True
            if full:
                number = int(SHARD_NAME.match(target.name).group(1)) + 1
                target = self.folder / f"gen-{number:06d}.json"
            self._db(target).insert(record)
        return record["id"]

    def _records_newest_first(self) -> Iterator[dict[str, Any]]:
        for shard in reversed(self._shards()):
            try:
                docs = self._db(shard).all()
            except StoreCorrupt as exc:
                if str(exc) not in self.problems:
                    self.problems.append(str(exc))
                continue
            yield from sorted(docs, key=lambda d: d.get("id", ""), reverse=True)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        out = []
        for rec in self._records_newest_first():
            out.append(dict(rec))
            if len(out) >= limit:
                break
        return out

    def get(self, record_id: str) -> dict[str, Any] | None:
        q = Query()
        for shard in reversed(self._shards()):
            try:
                hit = self._db(shard).get(q.id == record_id)
            except StoreCorrupt:
                continue
            if hit is not None:
                return dict(hit)
        return None
