"""History store: round trip, sharding, atomic private files, corrupt shards, concurrent writers."""

import multiprocessing
import stat

import pytest

from core import history as history_mod
from core.history import History


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
