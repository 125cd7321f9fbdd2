"""Run folders as a bad day leaves them: the app starts, the pane shows what it can, nothing is lost."""

import json

import pytest

from core.errors import TunelabError
from core.training.runs import Runs, StatusWriter, step_parts
from core.workbench.service import Workbench
from tests.seeded import finished_run as fake_finished_run
from tests.tui_helpers import fake_app, wait_for
from tui.widgets.training_pane import TrainingPane


def damage(home, how: str) -> str:
    """The newest run folder, damaged one way."""
    runs = Runs(home)
    if how == "stray empty folder":
        (runs.folder / "t9999stray").mkdir()
        return "t9999stray"
    run_id = fake_finished_run(home, steps=6, fixed_id="t9999" + how.replace(" ", "")[:10])
    run_dir = runs.path(run_id)
    metrics = run_dir / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    if how == "nan loss":  # what `train --learning-rate 1` writes once it diverges
        rows[3] = json.dumps({**json.loads(rows[3]), "loss": float("nan"), "grad_norm": float("inf")})
    elif how == "torn middle line":
        rows[2] = rows[2][:17]
    elif how == "row without loss":
        rows[1] = json.dumps({"step": 2, "lr": "fast"})
    elif how == "status of another shape":
        (run_dir / "status.json").write_text("[1, 2]")
    elif how == "status with wrong types":
        (run_dir / "status.json").write_text('{"state": ["done"], "step": "x", "pid": "123", "error": 5}')
    metrics.write_text("\n".join(rows) + "\n")
    return run_id


CASES = [
    "nan loss",
    "torn middle line",
    "row without loss",
    "status of another shape",
    "status with wrong types",
    "stray empty folder",
]


@pytest.mark.parametrize("how", CASES)
def test_a_damaged_run_folder_reads_as_what_it_can(home, how):
    fake_finished_run(home, steps=4)
    run_id = damage(home, how)
    runs = Runs(home)
    listed = {s.id: s for s in runs.list()}
    assert set(listed) >= {run_id} and all(isinstance(s.state, str) for s in listed.values())
    rows, _ = runs.metrics(run_id)
    assert all(isinstance(r["step"], (int, float)) for r in rows)
    for row in rows:
        step_parts(row)  # every row reads, whatever it holds
    assert all(s.error is None or isinstance(s.error, str) for s in listed.values())


def test_a_clean_run_keeps_no_error(home):
    run_id = fake_finished_run(home, steps=4)
    StatusWriter(Runs(home).path(run_id)).update(error=None)  # as the trainer writes it
    assert Runs(home).status(run_id).error is None


@pytest.mark.parametrize("how", CASES)
async def test_the_app_starts_over_a_damaged_newest_run(home, how):
    fake_finished_run(home, steps=4)
    run_id = damage(home, how)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait_for(pilot, lambda: pane.selected == run_id and run_id in pane.last_state)
        await pilot.pause()
        assert app.is_running


def test_nan_reads_as_nan_in_the_step_line(home):
    run_id = damage(home, "nan loss")
    rows, _ = Runs(home).metrics(run_id)
    assert "loss nan" in step_parts(rows[3]) and not any(p.startswith("gn") for p in step_parts(rows[3]))


def test_kill_now_on_a_finished_run_keeps_it_done(home):
    run_id = fake_finished_run(home, steps=4)
    bench = Workbench(home)
    assert bench.control.kill_run(run_id) == f"{run_id} is not running (done); nothing killed"
    assert Runs(home).status(run_id).state == "done"


def test_resume_without_run_config_is_one_line(home):
    run_id = fake_finished_run(home, steps=4)
    runs = Runs(home)
    (runs.path(run_id) / "checkpoints" / "step-4").mkdir(parents=True)
    (runs.path(run_id) / "run_config.json").unlink()
    with pytest.raises(TunelabError, match="run_config.json: missing or damaged; the run cannot be restarted"):
        runs.resume(run_id)


def test_two_resumes_at_once_start_one_trainer(home, monkeypatch):
    import subprocess
    import threading

    from core.training.runs import StatusWriter, _start_time

    run_id = fake_finished_run(home, steps=4)
    runs = Runs(home)
    (runs.path(run_id) / "checkpoints" / "step-4").mkdir(parents=True)
    started = []

    def launch(self, rid, resume=False):  # a trainer that takes a while to start
        proc = subprocess.Popen(["sleep", "30"])
        started.append(proc)
        StatusWriter(self.path(rid)).update(state="starting", pid=proc.pid, pid_start=_start_time(proc.pid))
        return proc.pid

    monkeypatch.setattr(Runs, "launch", launch)
    outcomes = []

    def resume():
        try:
            outcomes.append(Runs(home).resume(run_id))
        except TunelabError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(started) == 1
        assert sorted(map(type, outcomes), key=str) == [int, str] and "is still starting" in str(outcomes)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


SHARD_DAMAGE = {
    "a document that is a string": '{"_default": {"1": "just text"}}',
    "a table that is a list": '{"_default": []}',
    "a record with an integer id": '{"_default": {"1": {"id": 7, "kind": "generation", "prompt": "p"}}}',
}


@pytest.mark.parametrize("how", sorted(SHARD_DAMAGE))
async def test_history_opens_over_a_damaged_shard_and_keeps_the_good_records(home, how):
    from core.history.store import History
    from tests.tui_helpers import wait_for as wait
    from tui.screens.history import HistoryScreen

    kept = History(home).add({"kind": "generation", "prompt": "kept", "output": "safe"})
    (home / "history" / "gen-000099.json").write_text(SHARD_DAMAGE[how])
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f8")
        await wait(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.rows)
        assert [r["id"] for r in app.screen.rows] == [kept]
    assert History(home).get(kept)["prompt"] == "kept"


async def test_a_format_marker_of_the_wrong_value_is_one_line_not_a_crash(home):
    from core.history.store import History

    History(home).add({"kind": "generation", "prompt": "kept", "output": "safe"})
    (home / "history" / "FORMAT").write_text('{"format": 0}')
    history = History(home)
    assert "FORMAT: format must be a whole number from 1, got 0" in history.problems[0] and history.recent() == []
    with pytest.raises(TunelabError, match="FORMAT: format must be a whole number"):
        history.add({"kind": "generation"})  # nothing is written over a store it cannot read
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f8")
        await pilot.pause(0.5)
        assert app.is_running


def test_an_index_damaged_under_a_valid_header_is_rebuilt(home):
    from core.history.query import parse_query
    from core.history.store import History

    history = History(home)
    ids = [history.add({"kind": "generation", "prompt": f"p{i}", "output": "o"}) for i in range(3)]
    index = next((home / "history").glob("*.idx"))
    header, _, body = index.read_bytes().partition(b"\n")
    index.write_bytes(header + b"\n" + b"{broken\tp\n" + body)  # the header still matches the shard
    first = History(home)
    first.search(parse_query(""))
    assert any("damaged; rebuilt" in p for p in first.problems)
    assert sorted(r["id"] for r in History(home).search(parse_query("")).rows) == sorted(ids)


def test_runs_and_history_commands_list_what_they_can_and_warn_once_per_bad_file(home):
    from core.history.store import History
    from tests.conftest import tunelab

    good = fake_finished_run(home, steps=4)
    bad = damage(home, "status of another shape")
    History(home).add({"kind": "generation", "prompt": "kept", "output": "safe"})
    (home / "history" / "gen-000099.json").write_text(SHARD_DAMAGE["a table that is a list"])
    runs = tunelab("runs", home=home)
    assert runs.returncode == 0 and good in runs.stdout and bad in runs.stdout
    assert [ln for ln in runs.stderr.splitlines() if ln.strip()] == [
        f"tunelab: warning: {Runs(home).path(bad) / 'status.json'}: missing, unreadable or of another shape"
    ]
    history = tunelab("history", home=home)
    assert history.returncode == 0 and "kept" in history.stdout
    warnings = [ln for ln in history.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and "gen-000099.json" in warnings[0] and warnings[0].startswith("tunelab: warning: ")
    adapters = tunelab("adapters", home=home)
    assert adapters.returncode == 0 and adapters.stderr.count("tunelab: warning: ") == 1
    from core.storage.meta import Meta

    Meta(home).write(lambda db: db.table("eval_runs").insert({"id": "e-odd", "variants": "x"}))
    evals = tunelab("evals", home=home)
    assert evals.returncode == 0 and [ln for ln in evals.stderr.splitlines() if ln.strip()] == [
        f"tunelab: warning: {home / 'meta.json'}: eval row 'e-odd' left out (field 'created_at': field required)"
    ]


async def test_the_app_starts_and_works_with_every_damage_at_once(home):
    """Every corrupt state above in one data dir: the app starts, re-attaches, opens history, runs a
    prompt and an eval, and nothing that was readable is lost."""
    from core.evals.stored import EvalRuns
    from core.history.store import History
    from core.storage.meta import Meta
    from tests.tui_helpers import run_prompt
    from tests.tui_helpers import wait_for as wait
    from tui.screens.history import HistoryScreen

    fake_finished_run(home, steps=4)
    for how in CASES:
        damage(home, how)
    kept = History(home).add({"kind": "generation", "prompt": "kept", "output": "safe"})
    for n, text in enumerate(SHARD_DAMAGE.values(), start=90):
        (home / "history" / f"gen-{n:06d}.json").write_text(text)
    Meta(home).write(lambda db: db.table("eval_runs").insert({"id": "e-odd", "variants": "x"}))
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "ab.json").write_text("{torn")
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainingPane)
        await wait(pilot, lambda: pane.selected is not None)
        await pilot.press("f8")
        await wait(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.rows)
        assert kept in [r["id"] for r in app.screen.rows]
        await pilot.press("escape")
        await run_prompt(pilot, "hello")
        assert app.main.results.output.text
        app.query_one("#prompt-text").text = "{{text}}\nSentiment:"
        await pilot.press("ctrl+g")
        await wait(pilot, lambda: app.main.evals.token is None)
        assert app.is_running
    assert EvalRuns(home).list()[0].status == "done" and History(home).get(kept)["output"] == "safe"


def test_a_second_trainer_on_a_held_run_folder_leaves_and_resume_is_refused(home, monkeypatch):
    import subprocess
    import sys

    from core.storage.paths import child_env
    from core.training.runs import hold_trainer_lock, trainer_running

    run_id = fake_finished_run(home, steps=4)
    runs = Runs(home)
    run_dir = runs.path(run_id)
    (run_dir / "checkpoints" / "step-4").mkdir(parents=True)
    assert not trainer_running(run_dir)
    assert hold_trainer_lock(run_dir)  # this test process plays the running trainer
    assert trainer_running(run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "core.training", str(run_dir), "--resume"],
        env=child_env(TUNELAB_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "another trainer is already writing" in done.stdout
    assert runs.status(run_id).state == "done"  # its status untouched
    monkeypatch.setattr("core.training.runs.trainer_gone", lambda run_dir: False)  # skip the 15 s grace
    with pytest.raises(TunelabError, match="is done but a trainer still holds it"):
        runs.resume(run_id)
    import os

    from core.training import runs as runs_module

    os.close(runs_module._held.pop())  # this process stops playing the trainer
    assert not trainer_running(run_dir)
