"""promptfoo's test-case CSV: its `__expected` / `__expectedN` columns hold one assertion each
(`contains: Paris`, `equals: 4`, `is-json`, or a bare value that must equal the output); each becomes a
tunelab grader spec checked on that row only. Assertions that need code or another model are refused,
so a pass rate never counts a check that was not made."""

from __future__ import annotations

import re
from typing import Any

from core.errors import TunelabError

COLUMN = re.compile(r"^__expected\d*$")
PROMPT_COLUMNS = ("__prefix", "__suffix")  # promptfoo adds these to the prompt: tunelab's template does that
ASSERTION = re.compile(r"^(?P<negated>not-)?(?P<kind>[a-z][a-z0-9-]*)(?:\([\d.]+\))?(?::(?P<value>.*))?$", re.S)
SUPPORTED = (
    "equals, contains, icontains, not-contains, contains-any, contains-all, starts-with, regex, is-json, llm-rubric"
)
KNOWN = {  # the types mapped to graders; with `not-`, only the contains pair is
    *("equals", "contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all"),
    *("starts-with", "regex", "is-json", "llm-rubric"),
}
UNSUPPORTED = {  # promptfoo's other assertion types (and legacy prefixes): named in the refusal
    *("answer-relevance", "bleu", "classifier", "context-faithfulness", "context-recall", "context-relevance"),
    *("contains-html", "contains-json", "contains-sql", "contains-xml", "cost", "factuality", "finish-reason"),
    *("fn", "eval", "g-eval", "gleu", "grade", "guardrails", "human", "is-html", "is-refusal", "is-sql"),
    *("is-valid-function-call", "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml"),
    *("javascript", "latency", "levenshtein", "max-score", "meteor", "model-graded-closedqa"),
    *("model-graded-factuality", "moderation", "perplexity", "perplexity-score", "python", "rouge-n", "ruby"),
    *("select-best", "similar", "webhook", "word-count"),
}


def is_promptfoo(row: dict[str, Any]) -> bool:
    return any(isinstance(key, str) and COLUMN.match(key) for key in row)


def assertion_columns(row: dict[str, Any]) -> list[str]:
    """`__expected`, then `__expected1`, `__expected2`, ... in number order."""
    return sorted((k for k in row if COLUMN.match(k)), key=lambda k: int(k[len("__expected") :] or 0))


def checks(where: str, row: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The row's grader specs, and the answer it must equal (the training answer) if it says one."""
    for column in PROMPT_COLUMNS:
        if str(row.get(column) or "").strip():
            raise TunelabError(f"{where}: promptfoo's '{column}' column changes the prompt; put it in the template")
    specs: list[str] = []
    answer = None
    for column in assertion_columns(row):
        text = "" if row[column] is None else str(row[column]).strip()  # JSON rows may hold 0 or false
        if not text:
            continue
        spec, equals = _spec(f"{where}: {column}", text)
        specs += spec
        answer = equals if equals is not None else answer
    return tuple(dict.fromkeys(specs)), answer


def _spec(where: str, text: str) -> tuple[list[str], str | None]:
    match = ASSERTION.match(text)
    kind = match.group("kind") if match else ""
    if match is None or (kind not in UNSUPPORTED and kind not in KNOWN):
        return ["exact"], text  # a bare value: the output must equal it
    value = (match.group("value") or "").strip()
    negated = bool(match.group("negated"))
    if kind in ("contains", "icontains") and value:
        return [f"not_contains:{value}" if negated else f"contains:{value}"], None
    if not negated:
        if kind == "equals" and value:
            return ["exact"], value
        if kind in ("contains-any", "icontains-any") and _terms(value):
            return ["regex:(?i)" + "|".join(re.escape(t) for t in _terms(value))], None
        if kind in ("contains-all", "icontains-all") and _terms(value):
            return [f"contains:{t}" for t in _terms(value)], None
        if kind == "starts-with" and value:
            return ["regex:^" + re.escape(value)], None
        if kind == "regex" and value:
            return [f"regex:{value}"], None
        if kind == "is-json" and not value:
            return ["json"], None
        if kind == "llm-rubric" and value:  # graded by the eval's judge model (refused in one line without one)
            return [f"judge:{value}"], None
    raise TunelabError(f"{where}: promptfoo assertion '{text[:60]}' is not supported here (supported: {SUPPORTED})")


def _terms(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]
