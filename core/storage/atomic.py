"""TinyDB storage that never leaves a half-written file, plus the store's single-writer lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from core.errors import TunelabError
from core.storage.paths import refused_link

LOCK_TIMEOUT = 30.0  # seconds a writer waits for another before saying who holds the store


class StoreCorrupt(TunelabError):
    """A store file could not be parsed; it is named, skipped, and never overwritten."""


def open_private(path: Path, flags: int) -> int:
    """`os.open` of a 0600 file that never goes through a symlink planted in `path`'s place (another user's
    link would have tunelab truncate or fill its target): that is one line naming the file."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused_link(path) from None
        raise


def remove_path(path: Path) -> None:
    """Remove a file, a folder tree or a link (the link itself, never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Write to a private temp file, fsync, then rename over `path`: readers see old or new, never half.
    `durable=False` skips both fsyncs, for what may be lost in a power cut (a cache: a damaged shard is a miss)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


LOG_LIMIT = 10 * 2**20  # a log past this is moved to `.1` when its writer starts (one old log kept)


def open_append(path: Path, rotate_at: int | None = None) -> int:
    """A file descriptor appending to `path` (0600), never through a symlink planted in its place: that
    is one line naming the file. With `rotate_at`, a file already that large is first moved to `path.1`."""
    if rotate_at is not None:
        try:
            if path.lstat().st_size > rotate_at:
                os.replace(path, path.with_name(path.name + ".1"))
        except FileNotFoundError:
            pass
    return open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


class AtomicJSONStorage(Storage):
    """TinyDB JSON storage written by `write_atomic`; a corrupt file raises StoreCorrupt, never resets."""

    def __init__(self, path: str | Path, durable: bool = True, **_: Any) -> None:
        self.path, self.durable = Path(path), durable

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreCorrupt(f"cannot read store file {self.path.name}: {exc}") from None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreCorrupt(f"store file {self.path.name} is corrupt (line {exc.lineno}): skipped") from None
        if not isinstance(data, dict):
            raise StoreCorrupt(f"store file {self.path.name} is corrupt (not a JSON object): skipped")
        for name, table in data.items():  # TinyDB's shape: {table: {doc id: {document}}}
            if not isinstance(table, dict) or not all(
                isinstance(doc, dict) and str(key).isdigit() for key, doc in table.items()
            ):
                raise StoreCorrupt(f"store file {self.path.name} is corrupt (table '{name}' is not documents): skipped")
        return data

    def write(self, data: dict[str, Any]) -> None:
        write_atomic(self.path, json.dumps(data, ensure_ascii=False, separators=(",", ":")), self.durable)

    def close(self) -> None:
        pass


_thread_locks: dict[str, threading.Lock] = {}


class StoreBusy(TunelabError):
    """Another process held the writer lock for longer than the caller would wait."""


@contextmanager
def writer_lock(folder: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive across threads and processes: writers queue, so the store has one writer at a time.

    A writer that cannot get the lock within `timeout` raises StoreBusy naming the holder's pid (written
    into `.lock`), so a second tunelab says so instead of hanging.
    """
    key = str(folder.resolve())
    tlock = _thread_locks.setdefault(key, threading.Lock())
    if not tlock.acquire(timeout=timeout):
        raise StoreBusy(f"{folder} is being written by another thread; try again")
    try:
        fd = open_private(folder / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            _flock(fd, folder, timeout)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        tlock.release()


def _flock(fd: int, folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise StoreBusy(
                    f"{folder} is locked by another tunelab process (pid {holder}); "
                    "it stays read-only until that one finishes writing"
                ) from None
            time.sleep(0.05)


def lock_held(path: Path) -> bool:
    """Whether a process holds an exclusive flock on `path` right now (the OS frees it however its holder dies)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def writable(what: str) -> Iterator[None]:
    """Turn a failed write (read-only folder, full disk, permissions) into one line naming `what`."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TunelabError(f"cannot write {what}: {reason} ({exc.filename or what}); nothing was changed") from None
