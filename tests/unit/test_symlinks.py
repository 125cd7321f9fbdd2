"""A symlink planted in the data dir is refused with one line and never written through."""

import threading

import pytest

from core.errors import TunelabError
from core.history.store import History
from core.storage.atomic import remove_path, write_atomic
from core.storage.paths import ensure_private_dir

REFUSED = "is a symbolic link; tunelab never writes through one"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "theirs.txt"
    path.write_text("theirs")
    return path


def test_the_history_lock_is_never_truncated_through_a_link(home, target):
    History(home)
    (home / "history" / ".lock").symlink_to(target)
    with pytest.raises(TunelabError, match=REFUSED):
        History(home).add({"prompt": "p"})
    assert target.read_text() == "theirs"


def test_an_atomic_write_never_goes_through_a_link_at_its_temp_name(tmp_path, target):
    import os

    path = tmp_path / "status.json"
    (tmp_path / f".status.json.{os.getpid()}.{threading.get_ident()}.tmp").symlink_to(target)
    with pytest.raises(TunelabError, match=REFUSED):
        write_atomic(path, "{}")
    assert target.read_text() == "theirs" and not path.exists()


def test_a_linked_folder_is_refused_and_removing_a_link_keeps_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    (tmp_path / "runs").symlink_to(elsewhere)
    with pytest.raises(TunelabError, match=f"runs {REFUSED}"):
        ensure_private_dir(tmp_path / "runs")
    remove_path(tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and (elsewhere / "keep").is_dir()


def test_a_link_among_the_run_folders_is_not_a_run(home, tmp_path):
    from core.training.runs import Runs

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = Runs(home)
    (runs.folder / "t123").symlink_to(elsewhere)
    assert runs.list() == []
    with pytest.raises(TunelabError, match="no training run 't123'"):
        runs.path("t123")
