"""Graders turn (output, expected) into pass/fail plus a score; specs are short strings (`levenshtein:0.9`).

Each grader is declared in a registry (`kinds()`: name, usage, help, whether it needs a model) by its own
module in this package, found by itself: a new grader is one new module and its test (docs/extending.md).
A bare `contains` looks for the expected answer; bare `labels` takes the label set from the dataset's
expected values. A reasoning model's thinking is not graded: only its `final_answer`.
"""

from core.data.graders._base import (
    EDGE_PUNCT,
    THINK_CLOSE,
    THINK_OPEN,
    Check,
    Grade,
    Grader,
    GraderSpec,
    at_least,
    final_answer,
    normalize,
    pass_fail,
)
from core.data.graders._registry import GraderKind, grader, kind_of, kinds, parse_grader, register, spec_name
from core.data.graders._scores import grade_all, wilson_interval
from core.data.graders.similarity import chrf, levenshtein_ratio
from core.data.graders.structured import schema_errors
from core.data.graders.text import answer_label

__all__ = [
    "EDGE_PUNCT",
    "THINK_CLOSE",
    "THINK_OPEN",
    "Check",
    "Grade",
    "Grader",
    "GraderKind",
    "GraderSpec",
    "answer_label",
    "at_least",
    "chrf",
    "final_answer",
    "grade_all",
    "grader",
    "kind_of",
    "kinds",
    "levenshtein_ratio",
    "normalize",
    "parse_grader",
    "pass_fail",
    "register",
    "schema_errors",
    "spec_name",
    "wilson_interval",
]
