"""A training run on a disk with no space left names the full disk: its last word has room set aside
(a reserve freed just before the final status), and a run that said nothing at all is explained by the
disk under it. On a small tmpfs (skipped where mounting is not allowed)."""

import shutil
import subprocess
import time

import pytest

from core.training.config import TrainConfig
from core.training.runs import LIVE, RESERVE_BYTES, RESERVE_FILE, vanished_why
from core.workbench.service import Workbench


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not allowed'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder):
    """Write until the disk says no more."""
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    assert shutil.disk_usage(folder).free < 65536


@pytest.mark.slow
def test_a_run_on_a_full_disk_ends_failed_naming_it(small_disk, monkeypatch):
    monkeypatch.setenv("TUNELAB_HOME", str(small_disk))
    workbench = Workbench(small_disk)
    run_id = workbench.runs.create(TrainConfig(max_steps=2, batch_size=4, eval_split=None))
    assert (workbench.runs.path(run_id) / RESERVE_FILE).stat().st_size == RESERVE_BYTES
    workbench.runs.launch(run_id)
    fill(small_disk)  # while the child still imports torch (seconds): every write it makes finds no room
    deadline = time.monotonic() + 120
    while (status := workbench.runs.status(run_id)).state in LIVE | {"created"}:
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.2)
    assert status.state == "failed" and "No space left on device" in status.error, status


def test_a_run_that_said_nothing_on_a_full_disk_is_explained_by_the_disk(tmp_path, monkeypatch):
    run_dir = tmp_path / "t1"
    run_dir.mkdir()
    (run_dir / "worker.log").write_text("")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    assert vanished_why(run_dir).startswith("no space left on device under")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 0, 10**9))
    assert vanished_why(run_dir) == "empty log"  # room enough: the log's silence is all there is to say
