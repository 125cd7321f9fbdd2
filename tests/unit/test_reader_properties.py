"""Readers of files other processes (or a bad day) write: any bytes or JSON shape gives a value or the
one-line error, never anything else."""

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import TunelabError
from core.history.query import parse_query
from core.history.store import History
from core.storage.atomic import AtomicJSONStorage
from core.training.runs import Runs, metric_row, step_parts

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
CONTENT = st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode())


@given(CONTENT)
def test_a_metrics_line_reads_as_a_row_or_nothing(data):
    row = metric_row(data)
    assert row is None or (isinstance(row, dict) and isinstance(row["step"], (int, float)))
    if row is not None:
        step_parts(row)


@settings(max_examples=60, deadline=None)
@given(CONTENT)
def test_a_status_file_of_anything_lists_as_a_run(data):
    with tempfile.TemporaryDirectory() as root:  # a fresh folder per example (tmp_path is one per test)
        runs = Runs(Path(root))
        (runs.folder / "t1").mkdir()
        (runs.folder / "t1" / "status.json").write_bytes(data)
        (status,) = runs.list()
        assert isinstance(status.state, str) and status.id == "t1"


@settings(max_examples=60, deadline=None)
@given(CONTENT)
def test_a_store_file_of_anything_reads_or_is_named_corrupt(data):
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "store.json"
        path.write_bytes(data)
        try:
            value = AtomicJSONStorage(path).read()
        except TunelabError:
            return
        assert value is None or all(isinstance(t, dict) for t in value.values())


@settings(max_examples=40, deadline=None)
@given(CONTENT)
def test_a_history_shard_of_anything_never_breaks_a_search(data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        kept = History(root).add({"kind": "generation", "prompt": "kept", "output": "o"})
        (root / "history" / "gen-000050.json").write_bytes(data)
        history = History(root)
        assert kept in [r["id"] for r in history.search(parse_query("")).rows]
        assert history.get(kept)["prompt"] == "kept"


def test_appends_never_go_through_a_planted_symlink_and_logs_rotate(tmp_path):
    import os

    import pytest

    from core.storage.atomic import open_append

    target = tmp_path / "elsewhere.txt"
    target.write_text("theirs")
    (tmp_path / "metrics.jsonl").symlink_to(target)
    with pytest.raises(TunelabError, match="metrics.jsonl is a symbolic link; tunelab never writes through one"):
        open_append(tmp_path / "metrics.jsonl")
    assert target.read_text() == "theirs"
    log = tmp_path / "worker.log"
    log.write_text("x" * 100)
    os.close(open_append(log, rotate_at=50))
    assert (tmp_path / "worker.log.1").read_text() == "x" * 100 and log.read_text() == ""
