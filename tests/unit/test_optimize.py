"""`optimize` on the workbench: every candidate is a stored version and every round an eval in history, so
the verdict's count of versions tried includes them; the answer names the best, its diff and what was spent."""

import pytest

from core.data.prompts import PromptStore, PromptVersion
from core.errors import TunelabError
from core.evals.plan import EvalRequest
from core.optimize.candidates import parse_strategies
from core.workbench.optimizing import optimize
from core.workbench.service import Workbench
from tests.unit.test_evals import ScriptedBackend

START = PromptVersion("Review: {{text}}\nOverall:", mode="raw", params={"max_new_tokens": 4})


def test_every_candidate_is_a_version_and_every_round_an_eval(home):
    workbench = Workbench(home)
    rounds = []
    result = optimize(
        workbench, "senti", START, EvalRequest("demo", "eval", grader="labels", limit=48), ScriptedBackend(),
        budget=300, on_round=lambda search: rounds.append(search.calls),
    )  # fmt: skip
    stored = {row["id"] for row in PromptStore(home).versions("senti")}
    assert {vid for vid in result.search.scored} <= stored and len(result.search.scored) >= 10
    assert len(workbench.evals.list()) >= len(rounds) >= 2 and rounds == sorted(rounds)
    assert result.tried >= len(result.search.scored)  # history counts every candidate tried on these items
    assert result.search.calls <= 300 * 1.1 and result.final.n_items == 48
    # the scripted model answers "positive" to "Overall": a Sentiment instruction or demonstrations can't help it,
    # while "Answer with one of" instructions keep the same template: whatever won, the answer says so honestly
    if result.best.id == START.id:
        assert result.verdict is None
    else:
        assert (
            result.verdict is not None and result.verdict.tried == result.tried and result.diff.startswith("--- start")
        )


def test_bad_options_are_one_line_before_anything_runs(home):
    with pytest.raises(TunelabError, match="budget must be at least 50"):
        optimize(Workbench(home), "s", START, EvalRequest("demo"), ScriptedBackend(), budget=10)
    with pytest.raises(TunelabError, match="strategies takes shots, instructions, reflect"):
        parse_strategies("shots,magic")
    assert not (home / "evals").exists()


def test_a_scripted_proposer_writes_instructions_and_reflects_on_the_failures(home, monkeypatch):
    """The proposer is any model tunelab runs: here a scripted one, asked for rewrites and then shown the
    start's failing items (input, expected, given) to rewrite from."""
    import core.workbench.optimizing as optimizing

    asked = []

    def proposer(model, request, local, cancel):
        def ask(text):
            asked.append(text)
            return f"Sentiment of the review, rewrite {len(asked)}: {{{{bad}}}}"  # braces are never placeholders

        return ask

    monkeypatch.setattr(optimizing, "_proposer", proposer)
    result = optimize(
        Workbench(home), "senti", START, EvalRequest("demo", "eval", grader="labels", limit=24), ScriptedBackend(),
        budget=300, strategies=("instructions", "reflect"), proposer="scripted",
    )  # fmt: skip
    kinds = {s.candidate.kind for s in result.search.scored.values()}
    assert kinds == {"start", "instructions", "reflect"}
    reflecting = [text for text in asked if "failed these items" in text]
    assert reflecting and "| expected: negative | given: positive" in reflecting[0]
    assert all("{{" not in s.candidate.version.system for s in result.search.scored.values())
