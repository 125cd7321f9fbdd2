"""The optimizer's honesty, by simulation with known truth (seeded, no model): a scripted model answers an
item right with a probability that is a function of the prompt, seeded by a hash of item and prompt so the
same call repeats. The search (successive halving over 16+ candidates, a budget of 400 calls) then the verdict
on dev (adjusted for every candidate tried) and on the sealed rows (one look): with a model the prompt does
not change, "a real difference" at most 5% of trials; with one that truly improves with demonstrations, the
search finds the better prompts in at least 80% of trials."""

import hashlib

from core.data.datasets import Item
from core.data.prompts import PromptVersion
from core.evals.verdict import verdict
from core.optimize.candidates import Candidate, instruction_candidates, shot_candidates
from core.optimize.search import halving
from tests.seeded import eval_summary

START = PromptVersion("{{text}} ->", mode="raw")
TRAIN = [Item(f"t{i}", {"text": f"row {i}"}, "yes" if i % 2 else "no", f"t:{i}") for i in range(40)]
N_DEV = N_SEALED = 120


def passes(version: PromptVersion, item: str, p: float, trial: int) -> float:
    u = int.from_bytes(hashlib.sha256(f"{trial}\0{version.id}\0{item}".encode()).digest()[:8], "big") / 2**64
    return 1.0 if u < p else 0.0


def simulate(truth, trial):
    """One optimize run and its two verdicts: (dev adjusted real, sealed real, the best's shots)."""
    candidates = shot_candidates(START, len(TRAIN), seed=trial) + instruction_candidates(START, TRAIN, None)
    start = Candidate(START, "start", "start")

    def scorer(cands, n):
        return {c.version.id: [passes(c.version, f"d{i}", truth(c.version), trial) for i in range(n)] for c in cands}

    search = halving(start, candidates, scorer, N_DEV, 400)
    best = search.best.candidate.version
    tried = len(search.scored)  # what history counts: every candidate evaluated on these items
    dev = judge(best, START, lambda v, i: passes(v, f"d{i}", truth(v), trial), tried, N_DEV)
    sealed = judge(best, START, lambda v, i: passes(v, f"s{i}", truth(v), trial), 1, N_SEALED)
    return dev, sealed, best, search


def judge(best, start, score, tried, n):
    if best.id == start.id:
        return False
    rows = [[score(v, i) for i in range(n)] for v in (best, start)]
    variants = [
        {"label": f"p@{v.id[:6]}", "pass_rate": sum(r) / n, "prompt_id": v.id, "adapter": None, "model": "m"}
        for v, r in zip((best, start), rows)
    ]
    items = {str(vi): {f"i{i}": {"pass": s, "passed": s >= 0.5} for i, s in enumerate(r)} for vi, r in enumerate(rows)}
    summary = eval_summary(variants, items, split="dev")
    return verdict(summary, tried=tried, registered=[variants[0]["label"], variants[1]["label"]]).p_adjusted < 0.05


def test_a_search_over_prompts_that_change_nothing_is_a_real_difference_at_most_5_percent():
    runs, dev_real, sealed_real = 200, 0, 0
    for trial in range(runs):
        dev, sealed, _, search = simulate(lambda v: 0.6, trial)
        assert len(search.scored) >= 10 and 200 <= search.calls <= 400  # the budget holds
        dev_real += dev
        sealed_real += sealed
    error = 3 * (0.05 * 0.95 / runs) ** 0.5
    assert dev_real / runs <= 0.05 + error and sealed_real / runs <= 0.05 + error


def test_a_search_finds_demonstrations_that_truly_help_at_least_80_percent_of_the_time():
    """0.5 zero-shot, plus 0.1 per demonstration up to 4: the best found has at least 4 shots."""
    truth = lambda v: 0.5 + 0.1 * min(4, v.shots.k if v.shots else 0)  # noqa: E731
    runs = 100
    found = sum(
        simulate(truth, trial)[2].shots is not None and simulate(truth, trial)[2].shots.k >= 4 for trial in range(runs)
    )
    assert found / runs >= 0.8
