"""Rows are known by their content: inserting, deleting, reordering rows, renaming the file or converting
JSONL to CSV moves no row between train, eval and the sealed test split; a run's ledger says what it trained
on, and the seal is fixed the first time a dataset is sealed."""

import csv
import json
import random

import pytest

from core.data.datasets import SEALED, load_dataset
from core.data.seals import fixed_holdout
from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.storage.runfolders import read_ledger
from core.training.config import TrainConfig
from core.training.runs import Runs
from core.workbench.service import Workbench
from tests.seeded import empty_safetensors, finish
from tests.unit.test_evals import ScriptedBackend


def reviews(n=200, start=0):
    return [
        {"text": f"review number {i}: {'good' if i % 2 else 'bad'}", "label": "yes" if i % 2 else "no"}
        for i in range(start, start + n)
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def sides(spec, **kw):
    """Each row's text -> its split."""
    dataset = load_dataset(spec, expected="label", **kw)
    return {it.vars["text"]: it.split for it in dataset.items}


def test_no_row_moves_between_splits_whatever_is_done_to_the_file(tmp_path):
    rows = reviews()
    before = sides(write_jsonl(tmp_path / "a.jsonl", rows), sealed=0.2)
    assert set(before.values()) == {"train", "eval", SEALED}
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    changed = [*reviews(1, start=1000), *shuffled[5:]]  # a row inserted at the top, five deleted
    after = sides(write_jsonl(tmp_path / "renamed.jsonl", changed), sealed=0.2)
    with open(tmp_path / "as.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    as_csv = sides(str(tmp_path / "as.csv"), sealed=0.2)
    assert as_csv == before
    assert all(before[text] == split for text, split in after.items() if text in before)


def test_rows_with_the_same_content_are_kept_together_and_counted(home, tmp_path):
    rows = reviews(40)
    spec = write_jsonl(tmp_path / "d.jsonl", [*rows, rows[3], rows[3], rows[7]])
    dataset = load_dataset(spec, expected="label", sealed=0.3)
    assert dataset.repeats == 3 and len(dataset.items) == 43
    assert len({it.id for it in dataset.items}) == 43  # ids stay unique
    for text in (rows[3]["text"], rows[7]["text"]):
        assert len({it.split for it in dataset.items if it.vars["text"] == text}) == 1
    summary = Workbench(home).run_eval(
        EvalRequest(spec, "all", grader="labels", expected="label"), [Variant("no prompt", None)], ScriptedBackend()
    )
    assert "3 row(s) repeat another row's content" in summary.variants[0].notes[0]
    with pytest.raises(TunelabError, match=r"d2.jsonl:2: id 'x' appears more than once"):
        load_dataset(write_jsonl(tmp_path / "d2.jsonl", [{"id": "x", **rows[0]}, {"id": "x", **rows[1]}]))


def trained_run(home, spec, **settings):
    """A run created (its data checked, its ledger written) and finished with an adapter, without training."""
    runs = Runs(home)
    run_id = runs.create(TrainConfig(dataset=spec, expected="label", max_steps=2, **settings))
    finish(runs.path(run_id), 2, adapter=True)
    return run_id


def test_a_final_look_refuses_a_lora_that_trained_on_a_sealed_row(home, tmp_path):
    spec = write_jsonl(tmp_path / "d.jsonl", reviews())
    run_id = trained_run(home, spec)  # trained with no holdout: every non-eval row
    ledger = read_ledger(Runs(home).path(run_id))
    train = {it.digest[:16] for it in load_dataset(spec, expected="label").split("train")}
    assert ledger == train
    workbench = Workbench(home)
    request = EvalRequest(spec, "auto", grader="labels", expected="label", holdout=0.2)
    with pytest.raises(TunelabError, match=rf"adapter {run_id} trained on \d+ of the \d+ sealed rows"):
        workbench.compare_plan(request, _options(), [], [run_id], final=True)
    assert not (home / "evals").exists()  # refused: nothing written


def test_the_seal_is_fixed_the_first_time_a_dataset_is_sealed(home, tmp_path):
    spec = write_jsonl(tmp_path / "d.jsonl", reviews())
    workbench = Workbench(home)
    request = EvalRequest(spec, "auto", grader="labels", expected="label", holdout=0.2)
    workbench.run_eval(request, [Variant("no prompt", None)], ScriptedBackend())
    renamed = write_jsonl(tmp_path / "renamed.jsonl", reviews()[::-1])
    seal = lambda spec, holdout: fixed_holdout(home, EvalRequest(spec, expected="label", holdout=holdout))  # noqa: E731
    assert seal(renamed, 0.0) == 0.2  # applies by itself, by the rows
    with pytest.raises(TunelabError, match=r"sealed at 0.2 on .*holdout 0.3 would move rows already tuned on"):
        seal(renamed, 0.3)
    run_id = trained_run(home, renamed)  # no holdout asked: the seal keeps the sealed rows out all the same
    sealed = {it.digest[:16] for it in load_dataset(spec, expected="label", sealed=0.2).split(SEALED)}
    assert not read_ledger(Runs(home).path(run_id)) & sealed
    plan = workbench.compare_plan(EvalRequest(spec, "auto", expected="label"), _options(), [], [run_id], final=True)
    assert plan.request.split == SEALED and plan.request.holdout == 0.2
    other = write_jsonl(tmp_path / "other.jsonl", reviews(200, start=5000))
    assert seal(other, 0.3) == 0.3  # another dataset: its own first seal


def test_an_adapter_without_a_ledger_is_judged_with_a_note(home, tmp_path):
    spec = write_jsonl(tmp_path / "d.jsonl", reviews())
    folder = tmp_path / "peft"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "demo", "r": 8}))
    empty_safetensors(folder / "adapter_model.safetensors")
    workbench = Workbench(home)
    request = EvalRequest(spec, "auto", grader="labels", expected="label", holdout=0.2)
    plan = workbench.compare_plan(request, _options(), [], [str(folder)], final=True)
    summary = workbench.run_eval(plan.request, [Variant("no prompt", None, "demo", str(folder))], ScriptedBackend())
    assert any("the seal cannot vouch for what" in note for note in summary.variants[0].notes)


def _options():
    from core.engine.options import ModelOptions

    return ModelOptions("demo")
