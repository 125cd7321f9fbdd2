"""Graders that read the answer as text: `exact`, `labels[:a,b]`, `contains[:x]`, `not_contains:x`,
`regex:p`."""

from __future__ import annotations

import re

from core.data.graders._base import Check, GraderSpec, normalize, pass_fail
from core.data.graders._registry import grader
from core.errors import TunelabError


@grader("exact", "exact", "equals the expected answer, normalized (case, spaces, edge punctuation)")
def exact(spec: GraderSpec) -> Check:
    return lambda out, exp: pass_fail(normalize(out) == normalize(spec.expected(exp)))


@grader("labels", "labels[:a,b]", "commits to the expected label (of a,b; bare: of the dataset's answers)")
def labels(spec: GraderSpec) -> Check:
    label_set = [normalize(x) for x in (spec.arg.split(",") if spec.arg else spec.labels) if normalize(x)]
    if not label_set:
        raise TunelabError("grader 'labels' needs labels: labels:yes,no (or a dataset with expected answers)")
    return lambda out, exp: pass_fail(answer_label(out, label_set) == normalize(spec.expected(exp)))


def answer_label(output: str, labels: list[str]) -> str | None:
    """The label the output commits to: all of it, or its leading word(s) before punctuation."""
    text = normalize(output)
    for label in sorted(labels, key=len, reverse=True):
        if text == label or (text.startswith(label) and not text[len(label)].isalnum()):
            return label
    return None


@grader("contains", "contains[:x]", "contains x, any case (bare: the expected answer)")
def contains(spec: GraderSpec) -> Check:
    return lambda out, exp: pass_fail((spec.arg or spec.expected(exp)).casefold() in out.casefold())


@grader("not_contains", "not_contains:x", "does not contain x, any case")
def not_contains(spec: GraderSpec) -> Check:
    if not spec.arg:
        raise TunelabError("grader 'not_contains' needs text: not_contains:sorry")
    return lambda out, exp: pass_fail(spec.arg.casefold() not in out.casefold())


@grader("regex", "regex:p", "the regular expression p matches somewhere in it")
def regex(spec: GraderSpec) -> Check:
    try:
        pattern = re.compile(spec.arg)
    except re.error as exc:
        raise TunelabError(f"grader '{spec.text}': bad regular expression ({exc})") from None
    if not spec.arg:
        raise TunelabError("grader 'regex' needs a pattern: regex:^\\d+$")
    return lambda out, exp: pass_fail(pattern.search(out) is not None)
