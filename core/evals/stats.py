"""The statistics of a verdict, with the item as the unit.

An item's score is its pass fraction over the cell's seeds and repeats (0 or 1 for a single run). Two cells
are compared on the same items: the exact McNemar test when every score is 0 or 1, else a paired
permutation test (each item's pair of scores swapped or not; scipy's, seeded, so a verdict reads the same
every time). A cell's interval is Wilson's over items for a single run and a bootstrap over items (cluster
bootstrap: repeats and seeds of an item stay together) otherwise. When several prompt versions, LoRA runs,
seeds or checkpoints were tried on the same items and the best is kept, the p-value is adjusted for that
selection (Bonferroni over the configurations tried: the chance that any one of them looks this good by
luck). The smallest difference the items could show, and the items a difference needs, come from the
exact power of McNemar's test.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Iterable, Sequence

from core.data.graders import wilson_interval

ALPHA = 0.05
POWER = 0.8
RESAMPLES = 9999
SEED = 0  # the permutations and bootstrap draws: the same verdict on every run and machine


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: the binomial probability of a split at least this uneven among
    the `fixed + broken` discordant items, each a fair coin under the null."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def binary(scores: Iterable[float]) -> bool:
    return all(s in (0.0, 1.0) for s in scores)


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value for "no difference" between two cells' scores on the same items (in order)."""
    if binary(a) and binary(b):
        fixed = sum(x > y for x, y in zip(a, b, strict=True))
        broken = sum(y > x for x, y in zip(a, b, strict=True))
        return mcnemar_exact(fixed, broken)
    diffs = [x - y for x, y in zip(a, b, strict=True) if x != y]
    if not diffs:
        return 1.0
    from scipy.stats import permutation_test

    result = permutation_test(
        (diffs,),
        lambda d, axis: d.mean(axis=axis),
        permutation_type="samples",  # one sample of paired differences: each sign flipped or not
        n_resamples=RESAMPLES,
        alternative="two-sided",
        rng=SEED,
        vectorized=True,
    )
    return float(min(1.0, result.pvalue))


def interval(scores: Sequence[float]) -> tuple[float, float]:
    """95% interval for a cell's pass rate over its items: Wilson's over the items for 0/1 scores; for
    fractions (seeds, repeats) a seeded percentile bootstrap over items (an item's repeats and seeds
    resampled together), never narrower than Wilson's over the items at the same rate: repeats sharpen
    each item's score, they never add items."""
    if not scores:
        return (0.0, 0.0)
    n, mean = len(scores), statistics.fmean(scores)
    wilson = wilson_interval(round(mean * n, 9), n)
    if binary(scores) or len(set(scores)) == 1:
        return wilson
    from scipy.stats import bootstrap

    result = bootstrap(
        (list(scores),), statistics_mean, n_resamples=RESAMPLES, method="percentile", rng=SEED, vectorized=True
    )
    low, high = result.confidence_interval
    return (max(0.0, min(float(low), wilson[0])), min(1.0, max(float(high), wilson[1])))


def statistics_mean(x, axis=-1):
    return x.mean(axis=axis)


def adjusted(p: float, tried: int) -> float:
    """`p` for the best of `tried` configurations evaluated on the same items (Bonferroni)."""
    return min(1.0, p * max(1, tried))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of `ps` (in their order), for several comparisons made at once: the
    chance that any one of them looks this good by luck, less conservative than Bonferroni's."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out = [1.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def power_of(n: int, delta: float, discordance: float, alpha: float = ALPHA) -> float:
    """The chance the exact McNemar test at `alpha` finds a true difference `delta` (a proportion) on `n`
    items of which `discordance` are discordant, computed exactly: the discordant count is binomial, the
    winner's share of it binomial, and each count has McNemar's own rejection region."""
    import numpy as np
    from scipy.stats import binom

    if n <= 0 or delta <= 0:
        return 0.0
    psi = min(1.0, max(discordance, delta))  # at least every discordant item going the one way
    counts = np.arange(n + 1)
    critical = binom.ppf(alpha / 2, counts, 0.5) - 1  # rejected when the smaller side is at most this
    share = (psi + delta) / (2 * psi)  # of the discordant items, the ones the better cell gets right
    reject = np.where(
        critical >= 0, binom.cdf(critical, counts, share) + binom.sf(counts - critical - 1, counts, share), 0.0
    )
    return float(np.sum(binom.pmf(counts, n, psi) * reject))


def items_needed(delta: float, discordance: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """How many items a true difference of `delta` (0.1: ten points) needs to be found `power` of the time,
    when that share of items is discordant (one cell right, the other wrong)."""
    high = 8
    while power_of(high, delta, discordance, alpha) < power:
        if high > 1_000_000:
            return high
        high *= 2
    low = high // 2
    while high - low > 1:  # the power grows with the items (up to McNemar's small saw-tooth)
        mid = (low + high) // 2
        low, high = (mid, high) if power_of(mid, delta, discordance, alpha) < power else (low, mid)
    return high


PLANNED_DISCORDANCE = 0.3  # the share of items two cells disagree on, as `compare --plan` assumes


def power_discordance(observed: float, n: int) -> tuple[float, str]:
    """The discordance "these items find N points" is computed at, and how to say it: the planner's 30%, or
    the upper 95% Wilson bound of the one observed when that is higher; never the observed one itself (post-
    hoc power flatters two cells that happened to agree)."""
    bound = wilson_interval(observed * n, n)[1] if n else 1.0
    if bound > PLANNED_DISCORDANCE:
        return bound, f"at {bound:.0%} discordance, the upper 95% bound of the {observed:.0%} observed"
    return PLANNED_DISCORDANCE, f"at the planned {PLANNED_DISCORDANCE:.0%} discordance ({observed:.0%} observed)"


@functools.lru_cache(maxsize=4096)
def detectable(n: int, discordance: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest difference (a proportion) `n` items with this discordance find `power` of the time
    (to a tenth of a point)."""
    if n <= 0 or power_of(n, 1.0, discordance, alpha) < power:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(10):  # bisection: the power grows with the difference
        mid = (low + high) / 2
        low, high = (mid, high) if power_of(n, mid, discordance, alpha) < power else (low, mid)
    return high
