"""History store: round trip, sharding, atomic private files, corrupt shards, concurrent writers."""

import multiprocessing
import stat

import pytest

from core.history import store as history_mod
from core.history.store import History


def test_round_trip(home):
    h = History(home)
    rid = h.add({"kind": "generation", "prompt": "p", "output": "o", "params": {"seed": 1}})
    got = h.get(rid)
    assert got["prompt"] == "p" and got["output"] == "o" and got["params"] == {"seed": 1}
    assert got["created_at"] and h.recent(1)[0]["id"] == rid


def test_newest_first_across_shards(home, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 3)
    h = History(home)
    ids = [h.add({"n": i}) for i in range(8)]
    assert len(list((home / "history").glob("gen-*.json"))) == 3
    assert [r["id"] for r in h.recent(10)] == ids[::-1]
    assert h.get(ids[0])["n"] == 0


def test_files_are_private(home):
    History(home).add({"x": 1})
    folder = home / "history"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.glob("gen-*.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_corrupt_shard_is_reported_skipped_and_kept(home, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 2)
    h = History(home)
    first = [h.add({"n": i}) for i in range(2)]
    h.add({"n": 2})
    damaged = home / "history" / "gen-000002.json"
    damaged.write_text('{"_default": {"1": {"n"')  # truncated mid-write
    newer = h.add({"n": 3})
    assert damaged.read_text() == '{"_default": {"1": {"n"'  # never overwritten
    ids = [r["id"] for r in h.recent(10)]
    assert ids == [newer, *first[::-1]]
    assert any("gen-000002.json" in p for p in h.problems)


def _writer(home, n, worker):
    h = History(home)
    for i in range(n):
        h.add({"worker": worker, "i": i})


@pytest.mark.slow
def test_two_processes_writing_lose_nothing(home, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 7)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(home, 40, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = History(home).recent(1000)
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(2) for i in range(40)]


# -- search, paging, edits ---------------------------------------------------------------------------

from core.errors import TunelabError  # noqa: E402
from core.history.query import parse_query  # noqa: E402
from core.storage.atomic import StoreBusy, writer_lock  # noqa: E402


def _gen(prompt, output, **extra):
    return {"kind": "generation", "status": "done", "model": "demo", "prompt": prompt, "output": output, **extra}


def test_search_words_and_filters(home, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 3)
    h = History(home)
    a = h.add(_gen("A gripping Film", "positive", adapter="run-1", tags=["demo"]))
    b = h.add(_gen("a dull film", "negative", prompt_name="review@2"))
    c = h.add({"kind": "eval", "status": "done", "model": "other/Model", "prompt": "eval of review", "output": "78%"})

    def ids(text):
        return [r["id"] for r in h.search(parse_query(text)).rows]

    assert ids("") == [c, b, a]
    assert ids("FILM") == [b, a]  # case-insensitive, prompt and output
    assert ids("film gripping") == [a]  # every word must match
    assert ids('"dull film"') == [b]
    assert ids("kind:eval") == [c] and ids("model:model") == [c]
    assert ids("adapter:run-1") == [a] and ids("prompt:review") == [b]
    assert ids("#demo") == ids("tag:demo") == [a]
    assert ids("since:2000-01-01 until:2999-01-01") == [c, b, a] and ids("since:2999-01-01") == []
    assert ids("kind") == []  # a word in the row's JSON keys is not a hit


def test_paging_with_a_cursor_walks_everything_once(home, monkeypatch):
    monkeypatch.setattr(history_mod, "SHARD_SIZE", 4)
    h = History(home)
    ids = h.add_many(_gen(f"p{i}", "o") for i in range(11))
    seen, cursor = [], None
    while True:
        page = h.search(limit=3, cursor=cursor)
        seen += [r["id"] for r in page.rows]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == ids[::-1]


def test_tags_star_note_label_and_correction_are_searchable(home):
    h = History(home)
    rid = h.add(_gen("q", "wrong answer"))
    h.update(rid, tags=["#Keep", "keep", " x "], starred=True, note="check later")
    h.update(rid, label="bad", correction="right answer")
    record = h.get(rid)
    assert record["tags"] == ["Keep", "keep", "x"] and record["starred"] and record["note"] == "check later"
    for text in ("is:starred", "tag:x", "label:corrected", "label:any", "later", "right answer"):
        assert [r["id"] for r in h.search(parse_query(text)).rows] == [rid], text
    assert h.search(parse_query("label:good")).rows == []
    with pytest.raises(TunelabError, match="cannot edit field"):
        h.update(rid, output="rewritten")
    with pytest.raises(TunelabError, match="label must be good, bad or none"):
        h.update(rid, label="meh")


def test_ids_resolve_from_a_unique_prefix(home):
    h = History(home)
    rid = h.add(_gen("q", "a"))
    assert h.resolve(rid[:10]) == rid and h.get(rid[:10])["id"] == rid
    with pytest.raises(TunelabError, match="no history record"):
        h.resolve("ffffffffff")


def test_huge_output_lives_apart_and_comes_back_whole(home):
    h = History(home)
    big = "word " * 100_000  # 500 KB
    rid = h.add(_gen("q", big))
    h.add(_gen("q2", "small"))
    shard = home / "history" / "gen-000001.json"
    assert shard.stat().st_size < 100_000
    assert h.get(rid)["output"] == big
    assert [r["id"] for r in h.search(parse_query("word")).rows] == [rid]


def test_a_stale_index_is_rebuilt_from_its_shard(home):
    h = History(home)
    rid = h.add(_gen("q", "a"))
    (home / "history" / "gen-000001.idx").write_text("garbage")
    assert [r["id"] for r in History(home).search().rows] == [rid]
    assert (home / "history" / "gen-000001.idx").read_text().startswith('{"format"')  # repaired


def test_format_1_store_is_migrated_once_and_newer_is_refused(home):
    import json

    folder = home / "history"
    folder.mkdir(parents=True)
    old = {
        "_default": {
            "1": {
                "id": "17a0000000000001",
                "created_at": "2025-01-01T00:00:00+00:00",
                "kind": "generation",
                "prompt": "old prompt",
                "output": "old output",
            }
        }
    }
    (folder / "gen-000001.json").write_text(json.dumps(old))
    h = History(home)
    assert json.loads((folder / "FORMAT").read_text()) == {"format": history_mod.FORMAT_VERSION}
    assert (folder / "gen-000001.idx").exists()
    assert [r["id"] for r in h.search(parse_query("old")).rows] == ["17a0000000000001"]
    (folder / "FORMAT").write_text('{"format": 99}')
    newer = History(home)  # shown as a problem, read as empty, never written
    assert "format 99, newer than this tunelab" in newer.problems[0] and newer.recent() == []
    with pytest.raises(TunelabError, match="format 99, newer than this tunelab"):
        newer.add({"kind": "generation"})


def _hold_lock(folder, ready, release):
    with writer_lock(folder):
        ready.set()
        release.wait(30)


def test_a_second_writer_waits_then_says_who_holds_the_lock(home):
    h = History(home, lock_timeout=0.3)
    h.add(_gen("q", "a"))
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(h.folder, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(StoreBusy, match=f"pid {holder.pid}"):
            h.add(_gen("q2", "b"))
        assert len(h.search().rows) == 1  # reading goes on
    finally:
        release.set()
        holder.join(10)
    h.add(_gen("q3", "c"))
    assert len(h.search().rows) == 2


@pytest.mark.parametrize("errno_name", ["EROFS", "ENOSPC"])
def test_read_only_or_full_disk_is_one_line_and_keeps_what_was_saved(home, monkeypatch, errno_name):
    import errno
    import os

    from core.storage import atomic as storage

    h = History(home)
    rid = h.add(_gen("kept", "a"))
    real_open = os.open

    def failing_open(path, flags, *args):
        if str(path).endswith(".tmp"):
            raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(storage.os, "open", failing_open)
    with pytest.raises(TunelabError, match=r"cannot write history in .*: (Read-only|No space)"):
        h.add(_gen("lost", "b"))
    monkeypatch.undo()
    assert [r["id"] for r in History(home).search().rows] == [rid]
