"""Successive halving over the dev rows, on a budget of graded generations.

Every candidate is scored on a small minibatch (the first n dev items), the better half (and any candidate
that alone solves an item the others miss: a per-item Pareto front, GEPA's way) goes on to twice the items,
until two remain or the budget is spent; the finalists and the start are then scored on every dev row.
Minibatches are nested, so an item scored once is never generated again (the eval cache keeps it): the
budget counts new generations only. The scorer is anything that scores versions on the first n items, so a
simulation runs the same search in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import TunelabError
from core.optimize.candidates import Candidate

MIN_ITEMS = 8


class Scorer(Protocol):
    def __call__(self, candidates: list[Candidate], n_items: int) -> dict[str, list[float]]:
        """Each candidate's per-item scores (pass fractions) on the first `n_items` dev items, by version id."""
        ...


@dataclass
class Scored:
    candidate: Candidate
    scores: list[float]
    rounds: int = 1

    @property
    def rate(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass
class Search:
    start: Candidate
    scored: dict[str, Scored] = field(default_factory=dict)  # every candidate, by version id
    calls: int = 0  # graded generations spent
    finalists: list[str] = field(default_factory=list)
    stopped: str = ""  # why the search ended early, if it did

    @property
    def best(self) -> Scored:
        """The best finalist on every dev row (ties: the start, then the earlier candidate)."""
        final = [self.scored[v] for v in self.finalists] or list(self.scored.values())
        start = self.start.version.id
        return max(final, key=lambda s: (round(s.rate, 9), s.candidate.version.id == start))


def halving(
    start: Candidate,
    candidates: list[Candidate],
    scorer: Scorer,
    n_dev: int,
    budget: int,
    cancelled: Callable[[], bool] = lambda: False,
    on_round: Callable[[Search], object] = lambda search: None,
) -> Search:
    """Successive halving of `candidates` (the start among them) on `n_dev` dev items within `budget` calls."""
    pool = list({c.version.id: c for c in [start, *candidates]}.values())
    search = Search(start)
    rounds = max(1, math.ceil(math.log2(max(2, len(pool)))))
    spare = budget - 2 * n_dev  # the best finalist and the start, on every dev row, come last
    if spare < len(pool):
        raise TunelabError(
            f"{{0}} {budget} cannot score {len(pool)} candidates and then two of them on the {n_dev} dev rows: "
            f"give at least {2 * n_dev + len(pool)} (or fewer dev rows with --limit)",
            "budget",
        )
    n = min(n_dev, max(min(MIN_ITEMS, spare // len(pool)), spare // (rounds * len(pool))))
    done = 0  # items every survivor has been scored on
    survivors = pool
    while True:
        if cancelled():
            search.stopped = "cancelled"
            break
        cost = (n - done) * len(survivors)
        if search.calls + cost + _final_cost(search, n_dev) > budget and search.scored:
            search.stopped = f"the budget of {budget} calls ran out"
            break
        scores = scorer(survivors, n)
        search.calls += cost
        for c in survivors:
            search.scored[c.version.id] = Scored(
                c,
                scores[c.version.id],
                (search.scored[c.version.id].rounds + 1) if c.version.id in search.scored else 1,
            )
        done = n
        on_round(search)
        if len(survivors) <= 2 or n >= n_dev:
            break
        survivors = _keep(survivors, search, start)
        n = min(n_dev, 2 * n)
    final = _final(search)
    if not cancelled() and done < n_dev:
        scores = scorer(final, n_dev)
        search.calls += sum(n_dev - len(search.scored[c.version.id].scores) for c in final)
        for c in final:
            search.scored[c.version.id] = Scored(c, scores[c.version.id], search.scored[c.version.id].rounds + 1)
    search.finalists = [c.version.id for c in final if len(search.scored[c.version.id].scores) == n_dev]
    return search


def _finalists(search: Search) -> list[Scored]:
    """The best of the last round's survivors (those scored on the most items), by pass rate: a candidate
    that looked good on a few items only is not preferred to one that held up on more."""
    most = max(len(s.scores) for s in search.scored.values())
    return sorted((s for s in search.scored.values() if len(s.scores) == most), key=lambda s: -s.rate)


def _final(search: Search) -> list[Candidate]:
    """The last scoring: the start and the best of the others that held up on the most items."""
    start = search.start
    return [start, *(s.candidate for s in _finalists(search) if s.candidate.version.id != start.version.id)][:2]


def _final_cost(search: Search, n_dev: int) -> int:
    """What scoring the final pair on every dev row would still cost."""
    if not search.scored:
        return 2 * n_dev
    return sum(
        n_dev - len(search.scored[c.version.id].scores) if c.version.id in search.scored else n_dev
        for c in _final(search)
    )


def _keep(survivors: list[Candidate], search: Search, start: Candidate) -> list[Candidate]:
    """The better half by pass rate (ties: the earlier candidate), the start (what the best is judged
    against), and up to two more that alone pass an item the kept ones all fail."""
    ranked = sorted(survivors, key=lambda c: -search.scored[c.version.id].rate)
    kept = ranked[: max(2, math.ceil(len(ranked) / 2))]
    if start not in kept:
        kept.append(start)
    for c in ranked[len(kept) :]:
        mine = search.scored[c.version.id].scores
        unique = any(
            score > 0 and all(search.scored[k.version.id].scores[i] == 0 for k in kept) for i, score in enumerate(mine)
        )
        if (
            unique
            and len(kept) < len(ranked)
            and sum(1 for k in kept if k not in ranked[: math.ceil(len(ranked) / 2)]) < 2
        ):
            kept.append(c)
    return kept
