"""Early stopping: a real run of the demo model, trained in this process, whose eval loss is made to plateau
(injected, never timed) ends done before its last step, keeps and names its best checkpoint as its adapter, and says so in its
folder, where `runs attach` reads it again."""

import json

import pytest
import torch
from safetensors.torch import load_file

from core.storage.runfolders import checkpoint_name
from core.training.config import TrainConfig
from core.training.evaluation import Evaluation
from core.training.loop import train
from core.training.runs import Runs
from tests.conftest import here

PLATEAU = {2: 1.0, 4: 0.5, 6: 0.5, 8: 0.55}  # eval step -> eval loss: best at 4, then 2 evaluations no better


@pytest.mark.slow
def test_a_plateaued_run_stops_early_names_its_best_checkpoint_and_a_reattached_monitor_says_why(
    home, monkeypatch, capsys
):
    calls: list[int] = []

    def plateau(self, model):  # the run's eval loss at each eval step, then the final one
        calls.append(len(calls))
        return PLATEAU.get(2 * len(calls), 0.9)

    monkeypatch.setattr(Evaluation, "loss", plateau)
    runs = Runs(home)
    run_id = runs.create(TrainConfig(max_steps=20, eval_every=2, save_every=None, batch_size=8, early_stop=2))
    train(runs.path(run_id))
    status = runs.status(run_id)
    reason = (
        "stopped early at step 8: eval_loss has not improved for 2 evaluations; best checkpoint step-000004 "
        "(eval_loss 0.5), the run's adapter"
    )
    assert (status.state, status.step, status.total_steps) == ("done", 8, 20), status
    assert status.early_stop == reason
    assert json.loads((runs.path(run_id) / "status.json").read_text())["early_stop"] == reason  # re-attach reads it
    assert checkpoint_name(4) in status.checkpoints and status.adapter == "adapter"
    # kept: the best (4) and the last (8); the best so far at 2, once bettered, and 6 (no better) are not
    assert sorted(status.checkpoints) == [checkpoint_name(4), checkpoint_name(8)]
    # the adapter is the best checkpoint's weights (as load_best_model_at_end), not the last step's
    weights = {name: load_file(runs.path(run_id) / name / "adapter_model.safetensors") for name in (
        "adapter", f"checkpoints/{checkpoint_name(4)}", f"checkpoints/{checkpoint_name(8)}"
    )}  # fmt: skip
    adapter, best, last = weights.values()
    assert all(torch.equal(adapter[k], best[k]) for k in adapter)
    assert not all(torch.equal(adapter[k], last[k]) for k in adapter)
    rows, _ = runs.metrics(run_id)
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert [r["eval_loss"] for r in rows if "eval_loss" in r] == [1.0, 0.5, 0.5, 0.55]

    attached = here(capsys, "runs", "attach", run_id)
    assert attached.returncode == 0 and f"run {run_id}: done at step 8\n{reason}" in attached.stderr


def test_early_stop_without_evaluations_is_refused_in_one_line_before_a_run_exists(home, capsys):
    no_steps = here(capsys, "train", "--early-stop", "3", "--eval-split", "none", "--detach")
    no_rows = here(capsys, "train", "--early-stop", "3", "--split", "all", "--detach")
    assert no_steps.returncode == 2 and no_rows.returncode == 2
    assert "--early-stop needs evaluations: set --eval-every and an --eval-split" in no_steps.stderr
    assert "--early-stop needs evaluations, and this run has no eval rows (no eval loss: split 'all'" in no_rows.stderr
    assert len(no_steps.stderr.splitlines()) == len(no_rows.stderr.splitlines()) == 1
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
