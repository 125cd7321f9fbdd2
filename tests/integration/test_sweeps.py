"""`tunelab train --sweep`: the grid's runs one after another, each a normal run folder tagged with the sweep,
listed together, counted as LoRAs tried, and the best on dev named. Each run's process is faked as ending done
at once with an eval loss set by its learning rate (the training loop is tested elsewhere)."""

import json

import pytest

from core.history.store import History
from core.training.runs import Runs, StatusWriter
from core.workbench.service import Workbench
from tests.conftest import here
from tests.seeded import finish

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
    assert detached.returncode == 2 and "--sweep follows its runs one after another" in detached.stderr
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
