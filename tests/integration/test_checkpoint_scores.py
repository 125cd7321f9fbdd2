"""Pass rate per checkpoint: a run with eval_items scores its eval steps as an eval grades them, keeps a
checkpoint at each, and `RUN@best` / `compare --checkpoint best` judge the best one."""

import json

import pytest

from core.engine.engines import HostEngine
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval
from core.storage.runfolders import best_checkpoint, best_of, concrete_ref, resolve_adapter, scores
from core.training.config import TrainConfig
from core.training.loop import train
from core.training.runs import Runs

pytestmark = pytest.mark.slow
SCORED = dict(max_steps=40, eval_every=10, save_every=None, batch_size=8, eval_items=24, eval_grader="labels")


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """One real run trained in this process (about 5 s on the demo model), shared by the module's tests."""
    home = tmp_path_factory.mktemp("scored")
    runs = Runs(home)
    run_id = runs.create(TrainConfig(**SCORED, report_to="tensorboard"))
    train(runs.path(run_id))
    return home, run_id


def test_each_eval_step_is_scored_and_kept_as_a_checkpoint(scored_run):
    home, run_id = scored_run
    runs = Runs(home)
    status = runs.status(run_id)
    got = scores(runs.path(run_id))
    assert [s["step"] for s in got] == [10, 20, 30, 40]  # save_every off: scored steps are saved anyway
    assert status.checkpoints == ["step-000010", "step-000020", "step-000030", "step-000040"]
    assert all(0.0 <= s["pass_rate"] <= 1.0 and s["eval_loss"] is not None for s in got)
    assert got[-1]["pass_rate"] > got[0]["pass_rate"]  # the LoRA learns the labels
    best = best_of(got)
    assert status.best_checkpoint == f"step-{best['step']:06d}" and status.scored_checkpoints == 4
    assert best_checkpoint(runs.path(run_id)).name == status.best_checkpoint
    assert resolve_adapter(home, f"{run_id}@best") == runs.path(run_id) / "checkpoints" / status.best_checkpoint
    assert concrete_ref(home, f"{run_id[:8]}@best") == f"{run_id[:8]}@{status.best_checkpoint}"


def test_the_trainer_reports_each_step_and_each_scored_checkpoint_to_tensorboard(scored_run):
    from tests.unit.test_trackers import tensorboard_events

    home, run_id = scored_run
    runs = Runs(home)
    rows, _ = runs.metrics(run_id)
    scalars, texts = tensorboard_events(runs.path(run_id) / "tensorboard")
    assert scalars["train/loss"] == [(r["step"], pytest.approx(r["loss"])) for r in rows]
    assert [s for s, _ in scalars["train/learning_rate"]] == list(range(1, 41))
    assert scalars["eval/loss"] == [(r["step"], pytest.approx(r["eval_loss"])) for r in rows if "eval_loss" in r]
    got = scores(runs.path(run_id))
    assert scalars["eval/pass_rate"] == [(s["step"], pytest.approx(s["pass_rate"])) for s in got]
    assert f"| eval_items | {SCORED['eval_items']} |" in texts["config"]


def test_the_runs_pass_rate_is_what_an_eval_of_that_checkpoint_measures(scored_run):
    home, run_id = scored_run
    last = scores(Runs(home).path(run_id))[-1]
    request = EvalRequest("demo", "eval", "labels", limit=SCORED["eval_items"], use_cache=False)
    ref = f"{run_id}@step-{last['step']:06d}"
    summary = run_eval(home, request, [Variant("no prompt", None, "demo", ref)], HostEngine(ModelOptions("demo")))
    assert summary.variants[0].pass_rate == pytest.approx(last["pass_rate"])
    assert summary.variants[0].adapter == ref  # the stored eval names the exact checkpoint


def test_best_breaks_ties_by_eval_loss_then_the_earlier_step():
    rows = [
        {"step": 10, "pass_rate": 0.5, "eval_loss": 2.0},
        {"step": 20, "pass_rate": 0.8, "eval_loss": 1.5},
        {"step": 30, "pass_rate": 0.8, "eval_loss": 1.2},
        {"step": 40, "pass_rate": 0.8, "eval_loss": 1.2},
    ]
    assert best_of(rows)["step"] == 30
    assert best_of([{**r, "eval_loss": None} for r in rows])["step"] == 20
    assert best_of([]) is None


def test_damaged_metrics_and_missing_checkpoints_are_skipped(tmp_path):
    runs = Runs(tmp_path)
    run_id = runs.create(TrainConfig(max_steps=4))
    run_dir = runs.path(run_id)
    lines = [
        json.dumps({"step": 1, "loss": 1.0, "pass_rate": 0.9}),  # its checkpoint is gone
        "{torn",
        json.dumps({"step": 2, "loss": 1.0, "pass_rate": 7}),  # not a share
        json.dumps({"step": 3, "loss": 1.0, "pass_rate": "0.5"}),  # not a number
        json.dumps({"step": 4, "loss": 1.0, "eval_loss": 0.5, "pass_rate": 0.25}),
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert [s["step"] for s in scores(run_dir)] == [1, 4]
    with pytest.raises(TunelabError, match="scored no checkpoint"):
        resolve_adapter(tmp_path, f"{run_id}@best")
    kept = run_dir / "checkpoints" / "step-000004"
    kept.mkdir(parents=True)
    (kept / "adapter_config.json").write_text("{}")
    (kept / "adapter_model.safetensors").write_bytes(b"\0")
    assert resolve_adapter(tmp_path, f"{run_id}@best") == kept
    with pytest.raises(TunelabError, match="has no checkpoint 'step-9'"):
        resolve_adapter(tmp_path, f"{run_id}@step-9")


def test_eval_items_and_grader_are_checked_when_the_config_is_made():
    with pytest.raises(TunelabError, match="eval_items must be between 0 and 10000"):
        TrainConfig(eval_items=-1)
    with pytest.raises(TunelabError, match="eval grader: .*levenshtein"):
        TrainConfig(eval_grader="levenshtein:2")


def test_compare_checkpoint_best_judges_the_best_scored_checkpoint_and_counts_every_one_tried(
    scored_run, monkeypatch, capsys
):
    from tests.conftest import here

    home, run_id = scored_run
    monkeypatch.setenv("TUNELAB_HOME", str(home))
    best = Runs(home).status(run_id).best_checkpoint
    done = here(capsys, "compare", "--adapter", run_id, "--checkpoint", "best", "--grader", "labels", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert f"{run_id}@{best}" in {v.get("adapter") for v in out["variants"]}
    assert out["verdict"]["tried"] == 4  # the pick among 4 scored checkpoints is 4 LoRAs tried
    refused = here(capsys, "compare", "--adapter", f"{run_id}@step-000010", "--checkpoint", "best")
    assert refused.returncode == 2 and "--checkpoint best takes training run ids" in refused.stderr
