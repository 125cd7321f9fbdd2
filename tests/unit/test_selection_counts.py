"""The versions tried are counted over the evals that share items with the one judged, whatever split, file
bytes or name they were asked by; models multiply the configurations."""

import json

from core.data.prompts import PromptVersion
from core.evals.plan import EvalRequest, Variant
from core.workbench.service import Workbench
from core.workbench.verdicts import Tried
from tests.unit.test_evals import ScriptedBackend


def write(path, n=120, extra=()):
    rows = [
        {"text": f"item {i} {'good' if i % 2 else 'bad'}", "label": "positive" if i % 2 else "negative"}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*extra, *rows]))
    return str(path)


def version(word):
    return PromptVersion("{{text}} " + word, mode="raw")


def test_evals_on_shared_items_are_counted_whatever_the_split_or_bytes(home, tmp_path):
    workbench = Workbench(home)
    spec = write(tmp_path / "d.jsonl")
    run = lambda data, split, word: workbench.run_eval(  # noqa: E731
        EvalRequest(data, split, grader="labels", expected="label"), [Variant(word, version(word))], ScriptedBackend()
    )
    run(spec, "eval", "one")  # the held-out rows only
    run(spec, "auto", "two")  # every row of the file: the same rows and more
    grown = write(tmp_path / "renamed.jsonl", extra=[{"text": "a new row", "label": "positive"}])
    last = run(grown, "auto", "three")  # a row added, another name: other bytes, the same items
    tried = workbench.verdicts.tried_on(last)
    assert tried.versions == 3 and tried.evals == 3 and tried.count == 3
    other = run(
        write(tmp_path / "other.jsonl", n=0, extra=[{"text": f"x{i}", "label": "no"} for i in range(30)]),
        "auto",
        "four",
    )
    assert workbench.verdicts.tried_on(other).versions == 1  # no item in common


def test_models_count_as_configurations_tried():
    assert Tried(2, 1, 1).count == 2 and Tried(2, 1, 1, models=3).count == 6
    assert "on 3 models" in Tried(2, 1, 1, models=3).note()
