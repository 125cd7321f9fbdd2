"""`tunelab train --sweep`: the grid's runs one after another, each a normal run folder tagged with the sweep,
listed together, counted as LoRAs tried, and the best on dev named. Each run's process is faked as ending done
at once with an eval loss set by its learning rate (the training loop is tested elsewhere)."""

import json

import pytest

from core.history.store import History
from core.training.config import TrainConfig
from core.training.runs import Runs, StatusWriter
from core.workbench.service import Workbench
from tests.conftest import here
from tests.seeded import finish, finished_run

EVAL_LOSS = {1e-4: 0.9, 1e-3: 0.4}


@pytest.fixture
def launched(monkeypatch):
    """The runs started, in order; each ends done with the eval loss its learning rate gives."""
    started = []

    def launch(runs, run_id, *_, **__):
        assert all(runs.status(r).state == "done" for r in started)  # one after another, never two at once
        started.append(run_id)
        finish(runs.path(run_id), 2, adapter=True)
        StatusWriter(runs.path(run_id)).update(eval_loss=EVAL_LOSS[runs.train_config(run_id).learning_rate])
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    return started


def test_a_sweep_of_two_runs_trains_each_tags_them_and_names_the_best(home, capsys, launched):
    done = here(capsys, "train", "--sweep", "learning_rate=1e-4,1e-3", "--max-steps", "2", "--lora-r", "8")
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("sweep s") and first.endswith(": 2 runs, learning_rate (2), one after another")
    sweep_id = first.split()[1].rstrip(":")
    slow, fast = launched
    assert f"sweep run 1/2: {slow} learning_rate=0.0001" in done.stderr
    assert f"run {fast}: done at step 2" in done.stderr
    assert done.stderr.rstrip().endswith(f"best on dev: {fast} (eval_loss 0.4; use it as --adapter {fast})")
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith("t")}
    assert rows[slow][1:4] == ["0.0001", "done", "2"] and rows[fast][-1] == "0.4000"

    runs = Runs(home)
    for index, run_id in enumerate(launched, 1):
        config = runs.config(run_id)
        assert config["sweep"] == {"id": sweep_id, "index": index, "size": 2, "values": config["sweep"]["values"]}
        assert config["config"]["lora_r"] == 8 and config["config"]["max_steps"] == 2  # the other flags hold
    assert [runs.train_config(r).learning_rate for r in launched] == [1e-4, 1e-3]
    tagged = History(home).search(None, limit=10).rows
    assert sorted(r["ref"] for r in tagged if f"sweep-{sweep_id}" in r["tags"]) == sorted(launched)

    listed = here(capsys, "runs", "list").stdout
    assert f"{sweep_id} 1/2" in listed and f"{sweep_id} 2/2" in listed
    # judging the best alone still counts the other run of its sweep: it was picked among both on dev
    assert Workbench(home).verdicts._loras_tried({fast[:-2]})  # an id prefix, as an eval may keep it == 2
    assert Workbench(home).verdicts._loras_tried({fast, slow, "some/folder"}) == 3


def test_a_bad_grid_or_one_too_large_is_one_line_before_any_run(home, capsys, launched):
    bad = here(capsys, "train", "--sweep", "lora_rank=8,16")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "tunelab: error: --sweep: 'lora_rank' cannot be swept (not a training option; keys: the training options' names)"
    )
    large = here(capsys, "train", "--sweep", "lora_r=1,2,3,4,5,6,7,8,9 lora_alpha=1,2,3,4,5,6,7,8")
    assert large.returncode == 2 and "--sweep makes 72 runs, more than 64: give --yes to run them" in large.stderr
    detached = here(capsys, "train", "--sweep", "lora_r=8", "--detach")
    assert detached.returncode == 2 and "--sweep follows its runs to the end" in detached.stderr
    assert launched == [] and not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_a_sweep_goes_on_past_a_run_that_fails_and_names_the_best_of_the_rest(home, capsys, monkeypatch):
    def launch(runs, run_id, *_, **__):
        lr = runs.train_config(run_id).learning_rate
        state = {"state": "diverged", "error": "the loss became nan"} if lr == 1e-3 else {"state": "done"}
        StatusWriter(runs.path(run_id)).update(step=2, total_steps=2, eval_loss=0.7, **state)
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    done = here(capsys, "train", "--sweep", "learning_rate=1e-3,1e-4", "--max-steps", "2")
    assert done.returncode == 0 and "diverged at step 2 (the loss became nan)" in done.stderr
    best = done.stderr.rstrip().splitlines()[-1]
    assert best.startswith("best on dev: t") and json.loads(
        (Runs(home).path(best.split()[3]) / "run_config.json").read_text()
    )["config"]["learning_rate"] == pytest.approx(1e-4)


def test_compare_sweep_runs_the_grid_then_judges_its_best_counted_with_the_rest(home, capsys, launched, monkeypatch):
    """`compare --train --sweep`: the LoRA as is swept, the best on dev in the comparison in its place (the
    prompt's LoRA still trained by the comparison); without --train, one line and no run."""
    from core.errors import TunelabError

    judged = []

    def compare(self, plan, *_, **__):
        judged.append(plan)
        raise TunelabError("stopped by the test before grading")

    monkeypatch.setattr(Workbench, "compare", compare)
    refused = here(capsys, "compare", "--sweep", "learning_rate=1e-4,1e-3")
    assert refused.returncode == 2 and "--sweep sweeps the LoRA trained as is: give --train too" in refused.stderr
    assert launched == []
    prompt = home / "senti.toml"
    prompt.write_text('name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n')
    done = here(
        capsys, "compare", "--train", "--train-with-prompt", "--prompt", str(prompt), "--sweep",
        "learning_rate=1e-4,1e-3", "--limit", "4",
    )  # fmt: skip
    assert "stopped by the test" in done.stderr
    slow, fast = launched
    assert f"best on dev: {fast} (eval_loss 0.4): the comparison judges it" in done.stderr
    (plan,) = judged
    assert plan.adapters == [fast] and [c.template for c in plan.train] == ["{{text}} Overall, this review is"]
    assert Workbench(home).verdicts._loras_tried({fast}) == 2  # the sweep's other run counts as tried


@pytest.fixture
def at_once(home, monkeypatch):
    """Launches that leave each run live, and a sweep's poll that, instead of sleeping, ends the newest live run
    (done, its eval loss set by its learning rate): the runs started, each with its slot and the runs live then."""
    import types

    import core.training.runs as runs_module
    import core.workbench.sweeping as sweeping

    launched = []

    def live(runs):
        return [run_id for run_id, *_ in launched if runs.status(run_id).state == "running"]

    def launch(runs, run_id, *_, slot=None, **__):
        launched.append((run_id, slot, live(runs)))
        StatusWriter(runs.path(run_id)).update(state="running")
        return 0

    def poll(_):
        runs = Runs(home)
        newest = live(runs)[-1]
        finish(runs.path(newest), 2, adapter=True)
        StatusWriter(runs.path(newest)).update(eval_loss=EVAL_LOSS.get(runs.train_config(newest).learning_rate, 0.6))

    monkeypatch.setattr(Runs, "launch", launch)
    monkeypatch.setattr(runs_module, "running", lambda *_: True)
    monkeypatch.setattr(sweeping, "time", types.SimpleNamespace(sleep=poll))
    return launched


def test_nproc_trains_that_many_runs_at_once_one_gpu_each_and_a_freed_gpu_takes_the_next(
    home, capsys, at_once, monkeypatch
):
    from core.engine.cores import usable_cores

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    done = here(capsys, "train", "--sweep", "learning_rate=1e-4,3e-4,1e-3", "--max-steps", "2", "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].endswith(": 3 runs, learning_rate (3), 2 at once (GPU 3, GPU 5)")
    (first, on_first, _), (second, on_second, live_second), (third, on_third, _) = at_once
    assert (str(on_first), str(on_second)) == ("GPU 3", "GPU 5") and live_second == [first]  # both at once
    assert str(on_third) == "GPU 5"  # the second run ended first: its GPU takes the third
    assert {slot.threads for _, slot, _ in at_once} == {max(1, usable_cores() // 2)}
    runs = Runs(home)
    assert [runs.config(r)["sweep"]["on"] for r in (first, second, third)] == ["GPU 3", "GPU 5", "GPU 5"]
    assert {runs.train_config(r).nproc for r in (first, second, third)} == {1}  # each run one process
    lines = [line.split() for line in done.stdout.splitlines() if line.startswith("t")]
    assert [words[0] for words in lines if words[1] != "step"] == [first, second, third]  # the table: grid order
    assert [words[0] for words in lines if words[1:3] == ["step", "2"]] == [second, first, third]  # each line tagged
    assert done.stderr.rstrip().endswith(f"best on dev: {third} (eval_loss 0.4; use it as --adapter {third})")


def test_without_gpus_the_runs_at_once_share_the_cores_and_more_runs_than_gpus_is_refused(
    home, capsys, at_once, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    done = here(capsys, "train", "--sweep", "learning_rate=1e-4,1e-3", "--max-steps", "2", "--nproc", "2")
    assert done.returncode == 0 and ", 2 at once on the CPU (" in done.stderr.splitlines()[0]
    assert [slot.devices for _, slot, _ in at_once] == ["", ""] and at_once[1][2] == [at_once[0][0]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    refused = here(capsys, "train", "--sweep", "lora_r=4,8,16", "--nproc", "3")
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "tunelab: error: --nproc 3 with --sweep trains 3 runs at once, one GPU each: 2 GPUs are visible (0,1)"
    )
    assert len(at_once) == 2  # nothing more started


def test_a_whole_sweep_stops_from_another_process_its_live_runs_stop_and_no_more_start(home, capsys, monkeypatch):
    """`runs stop RUN --sweep` (the TUI's S): the sweep's live runs asked to stop and save, the rest never start."""
    import threading

    import core.training.runs as runs_module
    from core.training.runs import STOP_FILE

    launched, result = [], []

    def launch(runs, run_id, *_, **__):
        launched.append(run_id)
        StatusWriter(runs.path(run_id)).update(state="running")
        return 0

    monkeypatch.setattr(Runs, "launch", launch)
    monkeypatch.setattr(runs_module, "running", lambda *_: True)
    workbench = Workbench(home)
    plan = workbench.sweeps.plan(TrainConfig(max_steps=2), "lora_r=4,8,16")
    driver = threading.Thread(target=lambda: result.append(workbench.sweeps.run(plan, poll=0.01)))
    driver.start()
    while not launched:
        driver.join(0.01)
    refused = here(capsys, "runs", "stop", finished_run(home), "--sweep")
    assert refused.returncode == 2 and "is no sweep's: stop it alone" in refused.stderr
    first = Runs(home).path(launched[0])

    def obey():  # as the run does at its next step: it stops, once asked
        while not (first / STOP_FILE).exists():
            threading.Event().wait(0.01)
        StatusWriter(first).update(state="stopped")

    threading.Thread(target=obey, daemon=True).start()
    stopped = here(capsys, "runs", "stop", launched[0], "--sweep")
    assert stopped.stderr.splitlines() == [
        f"sweep {plan.id}: no more of its runs start; stopping {launched[0]}",
        f"{launched[0]}: stopped",  # followed to its end, as `runs stop` follows one
    ]
    driver.join(10)
    (swept,) = result
    assert swept.stopped and [r for r, _, _ in swept.ended] == launched and len(launched) == 1


def test_a_runs_slot_is_its_processs_gpu_and_thread_count(home, monkeypatch):
    """The real launch, its process faked: the slot's GPU is the child's only visible one."""
    import os

    import core.training.runs as runs_module
    from core.training.placement import Slot

    seen = []

    class Popen:
        def __init__(self, args, env, **_):
            seen.append(env)
            self.pid = os.getpid()

    monkeypatch.setattr(runs_module.subprocess, "Popen", Popen)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runs = Runs(home)
    runs.launch(runs.create(TrainConfig(max_steps=2)), slot=Slot("5", 3))
    runs.launch(runs.create(TrainConfig(max_steps=2)))  # a plain run: the parent's GPUs, all the cores
    assert (seen[0]["CUDA_VISIBLE_DEVICES"], seen[0]["OMP_NUM_THREADS"]) == ("5", "3")
    assert seen[1]["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_a_run_starting_as_its_sweep_is_stopped_is_asked_to_stop_too(home, monkeypatch):
    """The stop lands between the sweep's check and its run's launch (the run not live yet, so `stop` cannot ask
    it): the sweep's own loop asks it, and starts no other."""
    import threading

    import core.training.runs as runs_module
    from core.training.runs import STOP_FILE

    workbench, launched = Workbench(home), []

    def launch(runs, run_id, *_, **__):
        assert workbench.sweeps.stop(run_id)[1] == []  # `created`: not live, not asked here
        launched.append(run_id)
        StatusWriter(runs.path(run_id)).update(state="running")
        return 0

    def obey(run_dir):
        while not (run_dir / STOP_FILE).exists():
            threading.Event().wait(0.01)
        StatusWriter(run_dir).update(state="stopped")

    monkeypatch.setattr(Runs, "launch", launch)
    monkeypatch.setattr(runs_module, "running", lambda *_: True)
    plan = workbench.sweeps.plan(TrainConfig(max_steps=2), "lora_r=4,8")
    result = []
    driver = threading.Thread(target=lambda: result.append(workbench.sweeps.run(plan, poll=0.01)), daemon=True)
    driver.start()
    while not launched:
        driver.join(0.01)
    threading.Thread(target=obey, args=(Runs(home).path(launched[0]),), daemon=True).start()
    driver.join(10)
    assert result and result[0].stopped and [r for r, _, _ in result[0].ended] == launched and len(launched) == 1
