import json

import pytest
from jsonschema import Draft202012Validator

from core.data.graders import (
    chrf,
    final_answer,
    levenshtein_ratio,
    normalize,
    parse_grader,
    schema_errors,
    wilson_interval,
)
from core.errors import TunelabError


def schema_spec(tmp_path, schema) -> str:
    """`json:PATH` for `schema` written to a file."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    return f"json:{path}"


def passed(spec, output, expected=None, labels=()):
    return parse_grader(spec, labels)(output, expected).passed


def test_normalize():
    assert normalize('  "Positive."\n') == "positive"
    assert normalize("A  b\tC!") == "a b c"


def test_exact_is_normalized():
    assert passed("exact", " Positive. ", "positive")
    assert not passed("exact", "positive review", "positive")


def test_labels_take_the_committed_label_only():
    labels = ("positive", "negative")
    assert passed("labels", "Positive, because it works", "positive", labels)
    assert passed("labels:positive,negative", "negative.", "negative")
    assert not passed("labels", "positively great", "positive", labels)  # not a label, just a prefix
    assert not passed("labels", "negative", "positive", labels)
    assert not passed("labels", "maybe", "positive", labels)
    with pytest.raises(TunelabError, match="needs labels"):
        parse_grader("labels")


def test_contains_and_not_contains():
    assert passed("contains:Paris", "it is paris.")
    assert passed("contains", "the answer is 42", "42")
    assert not passed("contains", "the answer is 41", "42")
    assert passed("not_contains:sorry", "Sure!") and not passed("not_contains:sorry", "Sorry, no")
    with pytest.raises(TunelabError, match="needs text"):
        parse_grader("not_contains")


def test_regex():
    assert passed(r"regex:^\d+$", "123") and not passed(r"regex:^\d+$", "12a")
    with pytest.raises(TunelabError, match="bad regular expression"):
        parse_grader("regex:(")
    with pytest.raises(TunelabError, match="needs a pattern"):
        parse_grader("regex:")


def test_json_and_schema(tmp_path):
    assert passed("json", '{"a": 1}') and passed("json", '```json\n{"a": 1}\n```')
    assert not passed("json", "{a: 1}")
    schema = {
        "type": "object",
        "required": ["label"],
        "additionalProperties": False,
        "properties": {"label": {"enum": ["positive", "negative"]}, "score": {"type": "number", "maximum": 1}},
    }
    spec = schema_spec(tmp_path, schema)
    assert passed(spec, '{"label": "positive", "score": 0.9}')
    assert not passed(spec, '{"label": "meh"}')
    assert not passed(spec, '{"score": 0.5}')
    assert not passed(spec, '{"label": "positive", "extra": 1}')
    assert schema_errors([1, "x"], Draft202012Validator({"type": "array", "items": {"type": "integer"}})) == [
        "$[1]: 'x' is not of type 'integer'"
    ]
    with pytest.raises(TunelabError, match="JSON schema .*nope.json"):
        parse_grader(f"json:{tmp_path / 'nope.json'}")


def test_json_schema_grader_checks_every_keyword_of_the_standard(tmp_path):
    """pattern, minItems and oneOf were silently ignored by the old subset, so wrong answers passed."""
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"},
            "tags": {"type": "array", "minItems": 2},
            "value": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date"}]},
        },
    }
    spec = schema_spec(tmp_path, schema)
    assert passed(spec, '{"id": "ABC-12", "tags": ["a", "b"], "value": 3}')
    assert not passed(spec, '{"id": "abc-12"}')
    assert not passed(spec, '{"tags": ["a"]}')
    assert not passed(spec, '{"value": 2.5}')
    assert passed(spec, '```json\n{"id": "XYZ-1"}\n```')


def test_a_schema_that_is_not_a_schema_is_refused_once_with_where(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integr"}}}))
    with pytest.raises(TunelabError, match=r"bad.json: not a valid schema at properties/n/type"):
        parse_grader(f"json:{path}")


@pytest.mark.parametrize(
    "text, answer",
    [
        ("positive", "positive"),
        ("<think>\nhmm, upbeat\n</think>\n\npositive", "positive"),
        ("<think>a</think>b</think> positive \n", "positive"),  # after the last close
        ("Let me see.\n</think>\n\nnegative", "negative"),  # the prompt opened the thinking (DeepSeek-R1)
        ("  <think>\nstill thinking when the tokens ran out", ""),
        ("Use <think> tags", "Use <think> tags"),
    ],
)
def test_only_the_answer_after_the_thinking_is_graded(text, answer):
    assert final_answer(text) == answer


def test_similarity_graders():
    assert levenshtein_ratio("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein_ratio("", "") == 1.0
    assert levenshtein_ratio("a" * 1000, "b" * 1000) == 0.0  # rapidfuzz: 1000x1000 in microseconds
    assert chrf("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert 0 < chrf("the cat sat", "the cat sits") < 1 and chrf("abc", "xyz") == 0.0
    assert passed("levenshtein:0.5", "kitten", "sitting") and not passed("levenshtein:0.9", "kitten", "sitting")
    grade = parse_grader("chrf")("the cat sat on the mat", "the cat sat on a mat")
    assert grade.passed and 0.5 < grade.score < 1
    with pytest.raises(TunelabError, match="threshold must be a number from 0 to 1"):
        parse_grader("chrf:2")


def test_unknown_grader_and_missing_expected():
    with pytest.raises(TunelabError, match="unknown grader 'vibes'"):
        parse_grader("vibes")
    with pytest.raises(TunelabError, match="needs an expected answer"):
        parse_grader("exact")("x", None)


def test_wilson_interval():
    lo, hi = wilson_interval(45, 50)
    assert lo < 0.9 < hi and 0.78 < lo < 0.8 and 0.95 < hi < 0.97
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.2
    assert wilson_interval(0, 0) == (0.0, 0.0)
