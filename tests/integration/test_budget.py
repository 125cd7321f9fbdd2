"""`tunelab compare --budget SIZES --train`: the data-budget curve on the demo, headless, at tiny sizes and steps."""

import pytest

from core.data.datasets import load_dataset
from core.evals.budget_curve import nested_subsets
from core.storage.runfolders import LEDGER_CHARS, read_ledger
from core.workbench.budget import PATIENCE, last_curve
from core.workbench.service import Workbench
from tests.conftest import here

pytestmark = pytest.mark.slow


def test_compare_budget_trains_a_lora_per_size_on_its_rows_and_draws_the_curve(home, capsys):
    done = here(capsys, "compare", "--budget", "4,2", "--train", "--train-epochs", "0.1", "--limit", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "data-budget curve over 2, 4 of the 480 training rows" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["rows", "best", "prompt"] and [line.split()[0] for line in lines[1:3]] == ["2", "4"]
    assert "labelled rows (log scale)" in done.stdout and "┬" in done.stdout
    curve = last_curve(home)
    assert curve is not None and [p.size for p in curve.points] == [2, 4] and curve.sentence in done.stdout
    assert [p.candidates for p in curve.points] == [5, 7]  # the prompt as it is, and 1, 2, (4) shots x 2 rules
    train = load_dataset("demo").split("train")
    subsets = nested_subsets([it.id for it in train], [2, 4])
    workbench = Workbench(home)
    runs = sorted(workbench.runs.list(), key=lambda r: len(workbench.runs.config(r.id)["config"]["rows"]))
    assert len(runs) == 2
    for run, subset in zip(runs, subsets):  # each LoRA trained on its size's rows alone, as its ledger says
        config = workbench.runs.config(run.id)["config"]
        assert tuple(config["rows"]) == subset
        assert (config["early_stop"], config["eval_every"]) == (PATIENCE, 1)  # dev loss each epoch (1 step here)
        assert read_ledger(workbench.runs.path(run.id)) == {it.digest[:LEDGER_CHARS] for it in train if it.id in subset}
    pooled = [row for row in workbench.prompts.versions("senti-budget") if row.get("shots")]
    assert len(pooled) == 5 + 7 - 1 - 1  # the prompt as it is is one version at both sizes, and has no shots
    for row in pooled:
        assert set(row["shots"]["pool"]) in (set(subsets[0]), set(subsets[1]))  # demonstrations from the size's rows
    both = workbench.evals.load(curve.points[-1].eval_id)
    assert [v.adapter is not None for v in both.variants] == [False, True, True]  # prompt, LoRA, LoRA + prompt


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--budget", "16,1000", "--train"], "--budget 1000 is above the 480 training rows of demo"),
        (["--budget", "16"], "--budget needs --train"),
        (["--budget", "16", "--train", "--final"], "--budget does not take --final"),
        (["--budget", "16,x", "--train"], "--budget takes row counts like 16,64,256,all, got 'x'"),
        (["--budget", "16", "--train", "--split", "train"], "--budget needs dev rows apart from the training rows"),
    ],
)
def test_a_budget_it_cannot_run_is_one_line_before_anything_trains(home, capsys, args, said):
    done = here(capsys, "compare", *args)
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
