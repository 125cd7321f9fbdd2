"""Graders that score closeness to the expected answer, passing at a threshold: `levenshtein[:0.8]` and
`chrf[:0.5]`."""

from __future__ import annotations

from collections import Counter

from core.data.graders._base import Check, GraderSpec, at_least
from core.data.graders._registry import grader


@grader("levenshtein", "levenshtein[:0.8]", "edit-distance similarity to the expected answer at least the threshold")
def levenshtein(spec: GraderSpec) -> Check:
    threshold = spec.threshold(0.8)
    return lambda out, exp: at_least(levenshtein_ratio(out, spec.expected(exp)), threshold)


@grader("chrf", "chrf[:0.5]", "character n-gram F-score against the expected answer at least the threshold")
def chrf_grader(spec: GraderSpec) -> Check:
    threshold = spec.threshold(0.5)
    return lambda out, exp: at_least(chrf(out, spec.expected(exp)), threshold)


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
