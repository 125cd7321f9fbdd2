"""What every grader is made of: the `Grade` it gives, the `Grader` a spec becomes, the `GraderSpec` its
factory reads, and the helpers graders share (`normalize`, `final_answer`, `pass_fail`, ...)."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import TunelabError

EDGE_PUNCT = string.punctuation + string.whitespace + "“”‘’"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"  # Qwen3, DeepSeek-R1, SmolLM3 and their tunes write these


@dataclass(frozen=True)
class Grade:
    passed: bool
    score: float


Check = Callable[[str, str | None], Grade]  # (output, expected answer or None) -> grade


@dataclass(frozen=True)
class Grader:
    spec: str
    check: Check

    def __call__(self, output: str, expected: str | None) -> Grade:
        return self.check(output, expected)


@dataclass(frozen=True)
class GraderSpec:
    """A spec as a grader's factory reads it: `levenshtein:0.9` is name `levenshtein`, arg `0.9`. `labels`
    are the dataset's expected answers (what a bare `labels` grades against)."""

    text: str
    name: str
    arg: str
    labels: tuple[str, ...] = ()

    def expected(self, expected: str | None) -> str:
        """The item's expected answer; an item without one is an error naming the grader."""
        if expected is None:
            raise TunelabError(f"grader '{self.text}' needs an expected answer, and the item has none")
        return expected

    def threshold(self, default: float) -> float:
        """The arg as a threshold from 0 to 1 (`default` when there is none)."""
        if not self.arg:
            return default
        try:
            value = float(self.arg)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise TunelabError(f"grader '{self.text}': threshold must be a number from 0 to 1")
        return value


def pass_fail(ok: bool) -> Grade:
    return Grade(ok, 1.0 if ok else 0.0)


def at_least(score: float, threshold: float) -> Grade:
    return Grade(score >= threshold, round(score, 4))


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
