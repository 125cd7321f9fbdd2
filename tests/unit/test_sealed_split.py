"""The sealed test split: carved by id from the eval rows (the same rows whatever the order), never trained
on, looked at by a final comparison; every look is an eval the history keeps, and the second one warns."""

import json
import random

import pytest

from core.data.datasets import SEALED, load_dataset
from core.data.prompts import PromptVersion
from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.training.config import TrainConfig
from core.training.splits import train_rows
from core.workbench.service import PromptRef, Workbench
from tests.unit.test_evals import PROMPT, ScriptedBackend


def rows_file(path, order=None):
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": "yes" if i % 3 else "no"} for i in range(60)]
    if order is not None:
        random.Random(order).shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_sealed_rows_are_the_same_whatever_the_row_order_and_never_trained_on(tmp_path):
    one = load_dataset(rows_file(tmp_path / "a.jsonl"), expected="label", sealed=0.25)
    other = load_dataset(rows_file(tmp_path / "b.jsonl", order=7), expected="label", sealed=0.25)
    sealed = {it.id for it in one.split(SEALED)}
    assert one.sealed and sealed == {it.id for it in other.split(SEALED)} and 8 <= len(sealed) <= 22
    assert not sealed & {it.id for it in one.split("auto")}  # iteration never sees them
    config = TrainConfig(dataset=str(tmp_path / "a.jsonl"), expected="label", holdout=0.25)
    for split in ("train", "all"):
        trained = {it.id for it in train_rows(TrainConfig(**{**config.to_dict(), "split": split}), config.load_data())}
        assert trained and not trained & sealed
    with pytest.raises(TunelabError, match="holdout must be at least 0 and below 1"):
        load_dataset(str(tmp_path / "a.jsonl"), sealed=1.0)


def test_a_look_is_recorded_and_the_second_look_warns(home, tmp_path):
    workbench = Workbench(home)
    data = rows_file(tmp_path / "a.jsonl")
    request = EvalRequest(data, "auto", grader="labels", expected="label", holdout=0.25)
    variants = [Variant("no prompt", None), Variant("senti", PROMPT)]
    dev = workbench.verdicts.comparison(workbench.run_eval(request, variants, ScriptedBackend()))
    assert dev.summary.split is None and dev.verdict.split is None
    fresh = tmp_path / "fresh.jsonl"  # never sealed (the one above is, from now on, whatever the request says)
    fresh.write_text("".join(json.dumps({"text": f"other {i}", "label": "no"}) + "\n" for i in range(30)))
    with pytest.raises(TunelabError, match="has no sealed test split"):
        workbench.compare_plan(EvalRequest(str(fresh), "auto", expected="label"), _options(), [], final=True)
    plan = workbench.compare_plan(request, _options(), [PromptRef("senti", PROMPT)], final=True)
    assert plan.request.split == SEALED
    first = workbench.verdicts.comparison(workbench.run_eval(plan.request, variants, ScriptedBackend()))
    sealed_rows = load_dataset(data, expected="label", sealed=0.25).split(SEALED)
    assert first.summary.n_items == len(sealed_rows) and first.verdict.split == SEALED
    assert first.verdict.sentence.startswith("On the sealed test split: ")
    assert first.tried.evals == 1 and not any("looks" in w for w in first.warnings)
    second = workbench.verdicts.comparison(workbench.run_eval(plan.request, variants, ScriptedBackend()))
    assert second.tried.evals == 2 and second.verdict.tried == 2
    assert any("the sealed test split has had 2 looks: it is no longer clean" in w for w in second.warnings)
    assert second.verdict.p_adjusted == min(1.0, 2 * second.verdict.p_value)


def _options():
    from core.engine.options import ModelOptions

    return ModelOptions("demo")


def test_the_final_look_from_a_dev_eval_tests_the_two_cells_it_chose(home, tmp_path):
    workbench = Workbench(home)
    data = rows_file(tmp_path / "a.jsonl")
    request = EvalRequest(data, "auto", grader="labels", expected="label", holdout=0.25)
    other = PromptVersion("Text: {{text}}\nSentiment:", mode="raw", params={"max_new_tokens": 4})
    variants = [Variant("no prompt", None), Variant("senti", PROMPT), Variant("other", other)]
    saved = [PromptRef("senti", PROMPT, new=True), PromptRef("other", other, new=True)]
    dev = workbench.verdicts.comparison(workbench.run_eval(request, variants, ScriptedBackend(), new_prompts=saved))
    final, again = workbench.verdicts.final_plan(dev.summary)
    chosen = [dev.verdict.winner_label, dev.verdict.other_label]
    assert final.split == SEALED and final.registered == chosen
    look = workbench.verdicts.comparison(workbench.run_eval(final, again, ScriptedBackend()))
    assert {look.verdict.winner_label, look.verdict.other_label} == set(chosen)
    assert look.verdict.sentence.startswith("On the sealed test split, the two cells chosen on the dev rows: ")
    assert any("the other cells are shown as description, not tested" in w for w in look.warnings)
