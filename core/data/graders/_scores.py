"""Grades put together: a row's several checks against its accepted answers, and a pass rate's interval."""

from __future__ import annotations

import math

from core.data.graders._base import Grade, Grader


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
