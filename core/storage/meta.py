"""The small metadata DB (prompt versions, eval-run summaries, baselines): one TinyDB file.

Only summaries live here; bulky per-item results and per-step metrics go to run folders, so this
file stays small and rewriting it atomically on each change stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB

from core.storage.atomic import AtomicJSONStorage, writer_lock
from core.storage.paths import private_root

T = TypeVar("T")


class Meta:
    def __init__(self, root: Path) -> None:
        self.root = private_root(Path(root))
        self.path = self.root / "meta.json"

    def read(self, table: str) -> list[dict[str, Any]]:
        with TinyDB(self.path, storage=AtomicJSONStorage) as db:
            return [dict(doc) for doc in db.table(table).all()]

    def write(self, change: Callable[[TinyDB], T]) -> T:
        """Apply `change` under the store's writer lock (other processes queue)."""
        with writer_lock(self.root), TinyDB(self.path, storage=AtomicJSONStorage) as db:
            return change(db)
