"""A cache of generations, so re-running an eval only computes what changed.

The key covers everything that decides the output: the model's fingerprint (and so its chat
template), the adapter, the request (text, system, mode, messages), every decoding parameter (seed
included) and the dtype and device the model runs in. Shards by key prefix keep each write to one small TinyDB file.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from core.storage.atomic import AtomicJSONStorage, StoreBusy, StoreCorrupt, writer_lock
from core.storage.paths import ensure_private_dir


def cache_key(model: str, adapter: str | None, prompt: dict[str, Any], params: dict[str, Any], numerics: str) -> str:
    body = json.dumps(
        {"model": model, "adapter": adapter, "prompt": prompt, "params": params, "numerics": numerics}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()


class GenerationCache:
    def __init__(self, root: Path) -> None:
        self.folder = ensure_private_dir(Path(root) / "cache")

    def _shard(self, key: str) -> Path:
        return self.folder / f"{key[:2]}.json"

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        by_shard: dict[Path, set[str]] = defaultdict(set)
        for key in keys:
            by_shard[self._shard(key)].add(key)
        for shard, wanted in by_shard.items():
            try:
                with TinyDB(shard, storage=AtomicJSONStorage) as db:
                    found.update({d["k"]: d["r"] for d in db.all() if d.get("k") in wanted and _complete(d.get("r"))})
            except StoreCorrupt:
                continue  # a damaged shard is a cache miss, never an error
        return found

    def put_many(self, entries: dict[str, dict[str, Any]]) -> None:
        entries = {k: r for k, r in entries.items() if _complete(r)}
        by_shard: dict[Path, dict[str, dict[str, Any]]] = defaultdict(dict)
        for key, result in entries.items():
            by_shard[self._shard(key)][key] = result
        try:
            with writer_lock(self.folder):
                self._put(by_shard)
        except StoreBusy:
            return  # only a cache: another writer held it too long, so these results are not kept

    def _put(self, by_shard: dict[Path, dict[str, dict[str, Any]]]) -> None:
        """Atomic but not fsynced: a shard a power cut damages is set aside as a miss, so an eval's writes
        into dozens of shards do not wait on the disk dozens of times."""
        for shard, items in by_shard.items():
            try:
                with TinyDB(shard, storage=AtomicJSONStorage, durable=False) as db:
                    present = {d.get("k") for d in db.all()}
                    db.insert_multiple({"k": k, "r": r} for k, r in items.items() if k not in present)
            except StoreCorrupt:
                shard.replace(shard.with_suffix(".corrupt"))  # only a cache: set it aside, start afresh
                with TinyDB(shard, storage=AtomicJSONStorage, durable=False) as db:
                    db.insert_multiple({"k": k, "r": r} for k, r in items.items())


def _complete(result: Any) -> bool:
    """Only whole generations are reused: an output cut short by a cancel (as 0.1.0 cached them) would
    be graded as if the model had said only that."""
    return (
        isinstance(result, dict)
        and isinstance(result.get("output"), str)
        and result.get("stop_reason") not in ("cancelled", "skipped", "unrenderable")
    )
