"""Graders turn (output, expected) into pass/fail plus a score; specs are short strings.

Specs: `exact`, `labels[:a,b]`, `contains[:text]`, `not_contains:text`, `regex:pattern`,
`json[:schema.json]`, `levenshtein[:0.8]`, `chrf[:0.5]`. A bare `contains` looks for the expected
answer; bare `labels` takes the label set from the dataset's expected values. A reasoning model's thinking
is not graded: only its `final_answer`.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError

if TYPE_CHECKING:  # jsonschema and rapidfuzz load when a grader needs them, not with the TUI
    from jsonschema.protocols import Validator

EDGE_PUNCT = string.punctuation + string.whitespace + "“”‘’"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"  # Qwen3, DeepSeek-R1, SmolLM3 and their tunes write these


@dataclass(frozen=True)
class Grade:
    passed: bool
    score: float


@dataclass(frozen=True)
class Grader:
    spec: str
    check: Callable[[str, str | None], Grade]

    def __call__(self, output: str, expected: str | None) -> Grade:
        return self.check(output, expected)


def normalize(text: str) -> str:
    """Case-folded, whitespace collapsed, punctuation and quotes trimmed from both ends."""
    return " ".join(text.casefold().split()).strip(EDGE_PUNCT)


def final_answer(text: str) -> str:
    """What a reasoning model answers after thinking aloud: the text after the last `</think>`. Thinking
    that never closed (the token budget ran out first) gave no answer; text with no thinking is the answer."""
    if THINK_CLOSE in text:
        return text.rpartition(THINK_CLOSE)[2].strip()
    if text.lstrip().startswith(THINK_OPEN):
        return ""
    return text


def _need_expected(expected: str | None, spec: str) -> str:
    if expected is None:
        raise TunelabError(f"grader '{spec}' needs an expected answer, and the item has none")
    return expected


def parse_grader(spec: str, labels: Iterable[str] = ()) -> Grader:
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "exact":
        return Grader(spec, lambda out, exp: _bool(normalize(out) == normalize(_need_expected(exp, spec))))
    if kind == "labels":
        label_set = [normalize(x) for x in (arg.split(",") if arg else labels) if normalize(x)]
        if not label_set:
            raise TunelabError("grader 'labels' needs labels: labels:yes,no (or a dataset with expected answers)")
        return Grader(spec, lambda out, exp: _label(out, _need_expected(exp, spec), label_set))
    if kind == "contains":
        return Grader(spec, lambda out, exp: _bool((arg or _need_expected(exp, spec)).casefold() in out.casefold()))
    if kind == "not_contains":
        if not arg:
            raise TunelabError("grader 'not_contains' needs text: not_contains:sorry")
        return Grader(spec, lambda out, exp: _bool(arg.casefold() not in out.casefold()))
    if kind == "regex":
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise TunelabError(f"grader '{spec}': bad regular expression ({exc})") from None
        if not arg:
            raise TunelabError("grader 'regex' needs a pattern: regex:^\\d+$")
        return Grader(spec, lambda out, exp: _bool(pattern.search(out) is not None))
    if kind == "json":
        validator = _load_schema(arg) if arg else None
        return Grader(spec, lambda out, exp: _json(out, validator))
    if kind in {"levenshtein", "chrf"}:
        threshold = _threshold(spec, arg, 0.8 if kind == "levenshtein" else 0.5)
        measure = levenshtein_ratio if kind == "levenshtein" else chrf
        return Grader(spec, lambda out, exp: _at_least(measure(out, _need_expected(exp, spec)), threshold))
    raise TunelabError(
        f"unknown grader '{kind}' (use exact, labels, contains, not_contains, regex, json, levenshtein or chrf)"
    )


def _bool(ok: bool) -> Grade:
    return Grade(ok, 1.0 if ok else 0.0)


def _at_least(score: float, threshold: float) -> Grade:
    return Grade(score >= threshold, round(score, 4))


def _threshold(spec: str, arg: str, default: float) -> float:
    if not arg:
        return default
    try:
        value = float(arg)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise TunelabError(f"grader '{spec}': threshold must be a number from 0 to 1")
    return value


def answer_label(output: str, labels: list[str]) -> str | None:
    """The label the output commits to: all of it, or its leading word(s) before punctuation."""
    text = normalize(output)
    for label in sorted(labels, key=len, reverse=True):
        if text == label or (text.startswith(label) and not text[len(label)].isalnum()):
            return label
    return None


def _label(output: str, expected: str, labels: list[str]) -> Grade:
    return _bool(answer_label(output, labels) == normalize(expected))


def levenshtein_ratio(a: str, b: str) -> float:
    """1 - edit distance / longer length (1.0 for two empty strings), in C via rapidfuzz."""
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_similarity(a, b))


def chrf(hypothesis: str, reference: str, max_n: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (Popović 2015), averaged over n = 1..6, spaces ignored, in [0, 1]."""
    hyp, ref = "".join(hypothesis.split()), "".join(reference.split())
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        h = Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
        if not h or not r:
            continue
        overlap = sum((h & r).values())
        precisions.append(overlap / sum(h.values()))
        recalls.append(overlap / sum(r.values()))
    precision, recall = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if precision == 0 and recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def _load_schema(path: str) -> Validator:
    """A full JSON Schema validator (the draft the schema names, else 2020-12); a bad schema is refused here,
    once, rather than failing every item."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        schema = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise TunelabError(f"JSON schema {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise TunelabError(f"JSON schema {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(schema, dict):
        raise TunelabError(f"JSON schema {path}: must be a JSON object")
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise TunelabError(f"JSON schema {path}: not a valid schema at {where} ({exc.message})") from None
    return cls(schema)


def _json(output: str, validator: Validator | None) -> Grade:
    text = output.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except (json.JSONDecodeError, RecursionError):
        return _bool(False)
    return _bool(validator is None or not schema_errors(value, validator))


def schema_errors(value: Any, validator: Validator) -> list[str]:
    """Each way `value` breaks the schema, as `$.path: message`."""
    return [
        "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) + f": {error.message}"
        for error in validator.iter_errors(value)
    ]


def wilson_interval(passed: float, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a pass rate: honest at small n and at 0% or 100%."""
    if total == 0:
        return (0.0, 0.0)
    p = passed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def grade_all(
    graders: dict[str, Grader], specs: tuple[str, ...], output: str, accepted: tuple[str | None, ...]
) -> Grade:
    """Every spec must pass (a promptfoo row may make several checks; one with none passes, as there),
    against any one of the accepted answers (a list of answers: the best of them)."""

    def against(expected: str | None) -> Grade:
        grades = [graders[spec](output, expected) for spec in specs]
        return Grade(all(g.passed for g in grades), min((g.score for g in grades), default=1.0))

    return max((against(expected) for expected in accepted), key=lambda g: (g.passed, g.score))
