"""`--report-to`: each tracker against its real library. TensorBoard's event files read back with TensorBoard's
own reader; trackio's local store read back with trackio's, in a process of its own (trackio fixes its folder
when imported). A run's rows reach the tracker as they reach metrics.jsonl; what cannot report is one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import TunelabError
from core.storage import trackers
from core.storage.trackers import check, open_tracker, ready
from core.training.config import TrainConfig
from core.training.reporting import MetricsLog
from core.training.runs import Runs
from tests.conftest import REPO


def tensorboard_events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    """The scalars (tag: [(step, value)]) and texts (tag: Markdown) of the event files in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags["scalars"]}
    texts = {tag: make_ndarray(events.Tensors(tag)[-1].tensor_proto).item().decode() for tag in tags["tensors"]}
    return scalars, texts


def test_tensorboard_holds_the_scalars_the_tables_and_the_config(tmp_path):
    with open_tracker("tensorboard", "t1", {"lora_r": 16, "mapping": {"q": "text"}}, tmp_path / "tb") as tracker:
        tracker.scalars({"train/loss": 2.5, "train/learning_rate": 0.001}, 1)
        tracker.scalars({"train/loss": 1.25}, 2)
        tracker.table("items", ("item", "output"), [("a", "x | y\nz"), ("b", None)], 0)
    assert str(tmp_path / "tb") in tracker.shown
    scalars, texts = tensorboard_events(tmp_path / "tb")
    assert scalars["train/loss"] == [(1, 2.5), (2, 1.25)]
    assert scalars["train/learning_rate"] == [(1, pytest.approx(0.001))]
    assert "| lora_r | 16 |" in texts["config"] and '| mapping | {"q": "text"} |' in texts["config"]
    assert texts["items"].splitlines() == ["| item | output |", "|---|---|", "| a | x \\| y z |", "| b |  |"]


def test_a_runs_rows_reach_the_tracker_as_they_reach_metrics_jsonl(tmp_path):
    run_dir = tmp_path / "t42"
    run_dir.mkdir()
    rows = [
        {"step": 1, "loss": 3.0, "lr": 0.002, "grad_norm": 1.5, "tok_s": 900.0},
        {"step": 2, "loss": 2.0, "lr": 0.001, "grad_norm": 1.0, "eval_loss": 2.2, "pass_rate": 0.25},
        {"step": 3, "loss": None, "grad_norm": None},  # diverged: its row is kept, nothing is tracked
    ]
    with MetricsLog(run_dir, TrainConfig(report_to="tensorboard"), main=True) as log:
        for row in rows:
            log.write(row)
    assert [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == rows
    scalars, texts = tensorboard_events(run_dir / "tensorboard")  # the run's own folder
    assert scalars["train/loss"] == [(1, 3.0), (2, 2.0)] and scalars["train/grad_norm"] == [(1, 1.5), (2, 1.0)]
    assert [s for s, _ in scalars["train/learning_rate"]] == [1, 2]
    assert scalars["eval/loss"] == [(2, pytest.approx(2.2))] and scalars["eval/pass_rate"] == [(2, 0.25)]
    assert "| report_to | tensorboard |" in texts["config"]
    with MetricsLog(run_dir, TrainConfig(report_to="tensorboard", report_dir=str(tmp_path / "tb")), main=True) as log:
        log.write(rows[0])
    assert tensorboard_events(tmp_path / "tb" / "t42")[0]["train/loss"] == [(1, 3.0)]  # DIR/RUN
    with MetricsLog(run_dir, TrainConfig(report_to="tensorboard", report_dir=str(tmp_path / "r1")), main=False) as log:
        log.write(rows[0])  # another rank: nothing written
    assert not (tmp_path / "r1").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) == 4


def test_a_report_dir_is_kept_absolute_so_a_resumed_trainer_reports_where_it_began(home, tmp_path, monkeypatch):
    from core.engine.options import ModelOptions
    from core.workbench.service import Workbench

    monkeypatch.chdir(tmp_path)
    settings = {"report_to": "tensorboard", "report_dir": "tb"}
    config = Workbench(home).train_config(settings, options=ModelOptions("demo"), dataset="demo")
    assert config.report_dir == str(tmp_path / "tb")


TRACKIO_SCRIPT = """
import json, sys, threading
from core.storage.trackers import open_tracker
with open_tracker("trackio", "t7", {"lora_r": 8}, None) as tracker:
    tracker.scalars({"train/loss": 2.0}, 1)
    tracker.scalars({"train/loss": 1.0, "eval/pass_rate": 0.5}, 2)
    tracker.table("items", ("item", "passed"), [("a", True), ("b", False)], 0)
from trackio.sqlite_storage import SQLiteStorage
logs = SQLiteStorage.get_logs("tunelab", "t7")
config = SQLiteStorage.get_run_config("tunelab", "t7")
threads = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
print(json.dumps({"logs": logs, "config": config, "threads": threads, "shown": tracker.shown}, default=str))
"""


def test_trackio_keeps_the_metrics_in_its_local_store_and_stdout_clean(tmp_path):
    store = tmp_path / "trackio"
    env = {k: v for k, v in os.environ.items() if k not in trackers.REMOTE and not k.startswith("PYTEST_")}
    env.update(TRACKIO_DIR=str(store), HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO))
    ran = subprocess.run(
        [sys.executable, "-c", TRACKIO_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)  # stdout is ours alone: trackio's chatter is kept off it, even at exit
    logs = {row["step"]: row for row in got["logs"]}
    assert logs[1]["train/loss"] == 2.0 and logs[2]["train/loss"] == 1.0 and logs[2]["eval/pass_rate"] == 0.5
    assert logs[0]["items"]["_value"] == [{"item": "a", "passed": True}, {"item": "b", "passed": False}]
    assert got["config"]["lora_r"] == 8 and got["threads"] == []
    assert "trackio show --project tunelab" in got["shown"]
    assert (store / "tunelab.db").is_file() and not (tmp_path / "hf").exists()  # the store it was pointed at


def test_what_cannot_report_is_one_line_before_anything_runs(home, monkeypatch):
    with pytest.raises(TunelabError, match=r"^unknown tracker 'wandb' for report to \(known: tensorboard, trackio\)$"):
        check("wandb", None)
    with pytest.raises(TunelabError, match="^report_to must be one of tensorboard, trackio$"):
        TrainConfig(report_to="wandb")
    with pytest.raises(TunelabError, match="^report dir is TensorBoard's folder: it needs report to tensorboard"):
        TrainConfig(report_to="trackio", report_dir="tb")
    with pytest.raises(TunelabError, match="^report dir is TensorBoard's folder"):
        TrainConfig(report_dir="tb")
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/space")
    with pytest.raises(TunelabError, match="local store only; unset TRACKIO_SPACE_ID$"):
        ready("trackio")
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TunelabError, match=r"^report to tensorboard needs the tensorboard library: pip install "):
        Runs(home).create(TrainConfig(report_to="tensorboard", max_steps=1))
    assert not list((home / "runs").iterdir())  # refused before a run folder exists
