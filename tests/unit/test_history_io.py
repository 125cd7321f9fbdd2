"""History in and out: JSONL/CSV export, import without duplicates, labelled outputs as training data."""

import csv
import io
import json

import pytest

from core.data.datasets import load_dataset
from core.errors import TunelabError
from core.history.io import add_to_dataset, export_history, import_history, training_rows
from core.history.query import parse_query
from core.history.store import History
from tests.conftest import here


def _fill(h):
    good = h.add({"kind": "generation", "prompt": "2+2=", "output": "4", "system": "be brief", "tags": ["math"]})
    bad = h.add({"kind": "generation", "prompt": "capital of France?", "output": "Lyon", "tags": ["geo"]})
    h.add({"kind": "generation", "prompt": "unlabelled", "output": "x"})
    h.update(good, label="good")
    h.update(bad, label="bad", correction="Paris")
    return good, bad


def test_jsonl_export_imports_into_another_store_once(home, tmp_path):
    src = History(home)
    _fill(src)
    out = tmp_path / "h.jsonl"
    assert export_history(src, parse_query(""), "jsonl", out) == 3
    other = History(tmp_path / "other")
    assert import_history(other, out) == (3, 0)
    assert import_history(other, out) == (0, 3)  # stable ids: no duplicates
    assert [r["id"] for r in other.recent(10)] == [r["id"] for r in src.recent(10)]
    assert other.get(src.recent(1)[0]["id"])["output"] == "x"


def test_csv_export_has_one_row_per_record_with_labels_and_tags(home):
    h = History(home)
    good, bad = _fill(h)
    buffer = io.StringIO()
    assert export_history(h, parse_query("label:any"), "csv", out=buffer) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [(r["id"], r["label"], r["tags"]) for r in rows] == [(bad, "corrected", "geo"), (good, "good", "math")]
    assert rows[0]["correction"] == "Paris"


def test_import_names_the_bad_line_and_adds_nothing(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "abc123", "prompt": "ok"}\n{"id": 5}\n')
    with pytest.raises(TunelabError, match="bad.jsonl:2: field 'id' must be"):
        import_history(History(home), bad)
    bad.write_text('{"id": "abc123"}\n{"id": "abc124", "created_at": "2026-01-01\\"x"}\n')
    with pytest.raises(TunelabError, match="bad.jsonl:2: field 'created_at' must be an ISO date-time"):
        import_history(History(home), bad)
    bad.write_text('{"id": "abc123"}\n{"id": "abc\n')
    with pytest.raises(TunelabError, match="bad.jsonl:2: not valid JSON"):
        import_history(History(home), bad)
    assert History(home).recent(5) == []


def test_a_stored_record_whose_created_at_holds_a_quote_lists_shows_and_is_known(home):
    h = History(home)
    rid = h.add({"created_at": 'x"y', "prompt": "p"})
    assert [r["id"] for r in h.recent(5)] == [rid] and h.get(rid)["prompt"] == "p"
    assert h.add_many([{"id": rid, "prompt": "again"}], skip_known=True) == []


def test_labelled_outputs_become_a_training_split_the_loader_reads(home, tmp_path):
    h = History(home)
    good, bad = _fill(h)
    rows = list(training_rows(h.iter_matching(parse_query(""))))
    assert [(r["text"], r["expected"]) for r in rows] == [("capital of France?", "Paris"), ("2+2=", "4")]
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "eval.jsonl").write_text('{"text": "1+1=", "expected": "2"}\n')
    assert add_to_dataset(h, parse_query(""), folder) == 2
    assert add_to_dataset(h, parse_query(""), folder) == 0  # already there
    data = load_dataset(str(folder))
    train = data.split("train")
    assert [(i.id, i.vars["text"], i.expected) for i in train] == [
        (bad, "capital of France?", "Paris"),
        (good, "2+2=", "4"),
    ]
    assert train[1].vars["system"] == "be brief"


def test_history_cli_search_label_export_import(home, tmp_path, capsys):
    h = History(home)
    first = h.add({"kind": "generation", "prompt": "hello there", "output": "general kenobi", "model": "demo"})
    h.add({"kind": "generation", "prompt": "other", "output": "thing", "model": "demo"})
    assert here(capsys, "history", "tag", first[:-3], "star-wars").stdout.strip() == "#star-wars"
    assert here(capsys, "history", "label", first[:-3], "good").returncode == 0
    assert here(capsys, "history", "star", first[:-3]).returncode == 0
    listed = here(capsys, "history", "kenobi", "--tag", "star-wars", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["label"], r["starred"]) for r in rows] == [(first, "good", True)]
    shown = json.loads(here(capsys, "history", "show", first).stdout)
    assert shown["tags"] == ["star-wars"] and shown["output"] == "general kenobi"
    out = tmp_path / "train.jsonl"
    done = here(capsys, "history", "export", "label:good", "--format", "training", "--out", str(out))
    assert done.returncode == 0 and "exported 1 record(s)" in done.stderr
    assert [json.loads(line)["expected"] for line in out.read_text().splitlines()] == ["general kenobi"]
    dump = here(capsys, "history", "export", "--format", "jsonl").stdout
    (tmp_path / "all.jsonl").write_text(dump)
    again = here(capsys, "history", "import", str(tmp_path / "all.jsonl"))
    assert again.stdout.strip() == "imported 0 record(s), skipped 2 already stored"


def test_eval_results_export_as_csv_and_jsonl(home, capsys):
    from core.evals.plan import EvalRequest, Variant
    from core.evals.runner import run_eval
    from tests.unit.test_evals import PROMPT, ScriptedBackend

    summary = run_eval(
        home,
        EvalRequest("demo", "eval", grader="labels", limit=5),
        [Variant("no prompt", None), Variant("senti", PROMPT)],
        ScriptedBackend(),
    )
    out = here(capsys, "evals", "export", summary.id, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.returncode == 0 and len(rows) == 10 and "exported 10 graded row(s)" in out.stderr
    assert {r["label"] for r in rows} == {v.label for v in summary.variants}
    assert {r["passed"] for r in rows} <= {"True", "False"} and all(r["item"] for r in rows)
    lines = here(capsys, "evals", "export", summary.id).stdout.splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["run"] == summary.id
