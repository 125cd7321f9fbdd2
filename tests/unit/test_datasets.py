"""Dataset loading: formats, splits, mapping, and errors that name file, line and field."""

import json
import re

import pytest

from core.data.datasets import load_dataset
from core.data.templates import Template
from core.errors import TunelabError


def write(path, text, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_demo_task_has_splits_and_labels():
    ds = load_dataset("demo")
    assert ds.splits == ("eval", "train") and ds.format == "plain" and ds.expected_field == "label"
    evals = ds.split("eval")
    assert len(evals) == 120 and evals[0].vars.keys() == {"text"}
    assert {it.expected for it in evals} == {"positive", "negative"}
    assert evals[0].where == "eval.jsonl:1" and evals[0].split == "eval"
    with pytest.raises(TunelabError, match="no split 'test' \\(splits: eval, train\\)"):
        ds.split("test")


def test_alpaca_rows(tmp_path):
    f = write(tmp_path / "a.jsonl", jsonl([{"instruction": "Say hi", "input": "", "output": "hi"}]))
    ds = load_dataset(str(f))
    assert ds.format == "alpaca" and ds.items[0].vars == {"instruction": "Say hi", "input": ""}
    assert (
        ds.items[0].expected == "hi" and ds.items[0].id == ds.items[0].digest[:12] and ds.items[0].where == "a.jsonl:1"
    )


def test_chat_rows_keep_turns_and_take_the_last_answer(tmp_path):
    rows = [
        {
            "id": "c1",
            "messages": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
        }
    ]
    ds = load_dataset(str(write(tmp_path / "c.jsonl", jsonl(rows))))
    item = ds.items[0]
    assert ds.format == "chat" and item.expected == "hello" and item.vars == {"input": "hi", "system": "be kind"}
    assert [m["role"] for m in item.messages] == ["system", "user"]


def test_plain_rows_with_chosen_expected_field_mapping_and_row_splits(tmp_path):
    rows = [{"q": "2+2", "a": 4, "split": "train"}, {"q": "3+3", "a": 6, "split": "eval"}]
    ds = load_dataset(str(write(tmp_path / "m.jsonl", jsonl(rows))), expected="a", mapping={"input": "q"})
    assert ds.splits == ("train", "eval")
    assert ds.split("eval")[0].vars == {"q": "3+3", "input": "3+3"} and ds.split("eval")[0].expected == "6"


def test_csv_with_quoted_newlines_and_bom(tmp_path):
    text = '\ufeffid,text,label\n1,"two\nlines",positive\n2,plain,negative\n'
    ds = load_dataset(str(write(tmp_path / "d.csv", text)))
    assert [it.vars["text"] for it in ds.items] == ["two\nlines", "plain"]
    assert [it.where for it in ds.items] == ["d.csv:2", "d.csv:4"]


def test_trl_prompt_completion_rows_in_text_and_in_turns(tmp_path):
    text = write(tmp_path / "text.jsonl", '{"prompt": "The sky is", "completion": " blue."}\n')
    ds = load_dataset(str(text))
    assert ds.format == "plain" and ds.items[0].expected == " blue." and ds.items[0].vars == {"prompt": "The sky is"}
    turns = write(
        tmp_path / "turns.jsonl",
        json.dumps(
            {
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sky colour?"}],
                "completion": [{"role": "assistant", "content": "Blue."}],
            }
        )
        + "\n",
    )
    item = load_dataset(str(turns)).items[0]
    assert item.expected == "Blue." and [t["role"] for t in item.messages] == ["system", "user"]
    assert item.vars == {"input": "Sky colour?", "system": "Be brief."}
    bad = write(
        tmp_path / "bad.jsonl", '{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"content": "x"}]}\n'
    )
    with pytest.raises(TunelabError, match=r"^bad.jsonl:1: completion\[0\] needs a 'role'"):
        load_dataset(str(bad))


PROMPTFOO_CSV = (
    "question,__expected,__expected2,__description\n"
    '"What is 2+2?",4,contains: 4,math\n'
    '"Capital of France?",contains: Paris,,geo\n'
    '"Greet me","icontains-any: hello, hi",not-icontains: bye,\n'
    '"Give JSON",is-json,,\n'
    '"Begin",starts-with: Yes.,"contains-all: a,b",\n'
    '"Note",note: not an assertion type,,\n'
)


def test_promptfoo_csv_rows_carry_their_own_assertions(tmp_path):
    ds = load_dataset(str(write(tmp_path / "tests.csv", PROMPTFOO_CSV)))
    assert ds.format == "promptfoo" and ds.expected_field is None
    assert [it.vars for it in ds.items][:2] == [{"question": "What is 2+2?"}, {"question": "Capital of France?"}]
    assert [(it.checks, it.expected) for it in ds.items] == [
        (("exact", "contains:4"), "4"),  # a bare value must equal the output, and is the training answer
        (("contains:Paris",), None),
        (("regex:(?i)hello|hi", "not_contains:bye"), None),
        (("json",), None),
        (("regex:^Yes\\.", "contains:a", "contains:b"), None),
        (("exact",), "note: not an assertion type"),
    ]


@pytest.mark.parametrize(
    "row, message",
    [
        ('"q",model-graded-closedqa: is polite', "t.csv:2: __expected: promptfoo assertion 'model-graded-closedqa"),
        ('"q",not-regex: ^a', "t.csv:2: __expected: promptfoo assertion 'not-regex: ^a' is not supported"),
        ('"q",javascript: output.length < 9', "t.csv:2: __expected: promptfoo assertion 'javascript"),
    ],
)
def test_promptfoo_checks_that_need_code_or_a_model_are_refused_with_where(tmp_path, row, message):
    with pytest.raises(TunelabError, match=f"^{re.escape(message)}"):
        load_dataset(str(write(tmp_path / "t.csv", f"question,__expected\n{row}\n")))
    with pytest.raises(TunelabError, match=r"^t.csv:2: promptfoo's '__prefix' column changes the prompt"):
        load_dataset(str(write(tmp_path / "t.csv", "question,__expected,__prefix\nq,4,Answer:\n")))


def test_promptfoo_checks_in_json_rows_keep_a_zero(tmp_path):
    rows = write(tmp_path / "t.jsonl", '{"q": "1-1?", "__expected": 0}\n{"q": "hi", "__expected": null}\n')
    assert [(it.checks, it.expected) for it in load_dataset(str(rows)).items] == [(("exact",), "0"), ((), None)]


def test_tsv_rows_split_on_tabs_only(tmp_path):
    ds = load_dataset(str(write(tmp_path / "d.tsv", "text\tlabel\nGood, really good\tpositive\n")))
    assert ds.items[0].vars == {"text": "Good, really good"} and ds.items[0].expected == "positive"


def test_content_hash_changes_with_content(tmp_path):
    f = write(tmp_path / "h.jsonl", jsonl([{"text": "a", "label": "x"}]))
    first = load_dataset(str(f)).sha256
    write(f, jsonl([{"text": "b", "label": "x"}]))
    assert load_dataset(str(f)).sha256 != first


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "lab', "t.jsonl:2: not valid JSON"),
        ("t.jsonl", '{"text": "a", "label": "x"}\n[1, 2]\n', "t.jsonl:2: expected a JSON object, got list"),
        ("t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n', "t.jsonl:2: missing field 'label'"),
        ("t.jsonl", '{"text": null, "label": "x"}\n', "t.jsonl:1: field 'text' is null"),
        ("t.jsonl", b'{"text": "a", "label": "x"}\n{"text": "\xff"}\n', "t.jsonl:2: not UTF-8 (byte 0xff)"),
        ("t.jsonl", "\n\n", "t.jsonl: no rows"),
        ("t.jsonl", '{"messages": []}\n', "t.jsonl:1: field 'messages' must be a non-empty list"),
        (
            "t.jsonl",
            '{"id": 1, "text": "a", "label": "x"}\n{"id": 1, "text": "b", "label": "y"}\n',
            "id '1' appears more than once",
        ),
        ("t.csv", "text,label\na,x\nb\n", "t.csv:3: missing value for column 'label'"),
        ("t.csv", "text,label\na,x,extra\n", "t.csv:2: more values than columns"),
        ("t.csv", "", "t.csv: no rows"),
        ("t.tsv", "text\tlabel\na\tx\tz\n", "t.tsv:2: more values than columns"),
        ("tests.yaml", "- vars: {q: hi}\n", "tests.yaml: not a data file tunelab reads (use .jsonl, .json, .csv, .tsv"),
    ],
)
def test_bad_files_name_file_line_and_field(tmp_path, name, content, message):
    f = write(tmp_path / name, content)
    with pytest.raises(TunelabError) as info:
        load_dataset(str(f))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_paths(tmp_path):
    with pytest.raises(TunelabError, match="dataset not found"):
        load_dataset(str(tmp_path / "nope.jsonl"))
    with pytest.raises(TunelabError, match="has no .jsonl, .json, .csv, .tsv, .parquet, .arrow files"):
        load_dataset(str(tmp_path))


def test_template_check_names_the_row(tmp_path):
    f = write(tmp_path / "v.jsonl", jsonl([{"text": "a", "label": "x"}, {"body": "b", "label": "y"}]))
    ds = load_dataset(str(f))
    with pytest.raises(
        TunelabError, match=r"^v.jsonl:2: template variable '\{\{text\}\}' has no value \(fields: body\)$"
    ):
        ds.check_template(Template("{{text}}"))


def test_ten_megabyte_single_line(tmp_path):
    big = "word " * (2 * 1024 * 1024)
    f = write(tmp_path / "big.jsonl", json.dumps({"text": big, "label": "x"}) + "\n")
    assert len(load_dataset(str(f)).items[0].vars["text"]) == len(big)
    c = write(tmp_path / "big.csv", f'text,label\n"{big}",x\n')
    assert len(load_dataset(str(c)).items[0].vars["text"]) == len(big)
