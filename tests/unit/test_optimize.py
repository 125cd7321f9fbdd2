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
    assert result.search.calls <= 300 and result.final.n_items == 48
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


class FollowsInstructions(ScriptedBackend):
    """Right on every item when the system prompt lists the answers; a coin flip of the item's words otherwise."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        from core.engine.protocol import GenResult

        for i, p in enumerate(prompts):
            text = p.text or p.messages[-1]["content"]
            listed = "one of:" in p.system
            good = any(w in text.lower() for w in ("love", "great", "excellent", "perfect", "fantastic"))
            on_result(i, GenResult("positive" if (good if listed else len(text) % 2) else "negative", "eos", 1))


def test_compare_optimize_adds_the_best_found_as_a_column_with_the_search_counted(home):
    from argparse import Namespace

    from core.engine.options import ModelOptions
    from core.workbench.service import PromptRef
    from tui.cli.optimizing import optimized

    workbench = Workbench(home)
    start = PromptVersion("{{text}}", mode="raw", params={"max_new_tokens": 4})
    request = EvalRequest("demo", "eval", grader="labels", limit=40)
    refs = [PromptRef("senti", start, new=True)]
    found = optimized(Namespace(optimize=300), workbench, request, refs, FollowsInstructions())
    assert [ref.name for ref in found] == ["senti-opt"] and "one of:" in found[0].version.system
    plan = workbench.compare_plan(request, ModelOptions("demo"), refs + found)
    judged = workbench.compare(plan, FollowsInstructions())
    assert [c.label.split("@")[0] for c in judged.grid.cols] == ["no prompt", "senti", "senti-opt"]
    assert judged.tried.versions > 3  # the search's candidates are counted on these items


class OnOneModel(ScriptedBackend):
    """An engine with one model loaded (as the TUI's model worker): any other model is refused."""

    def check(self, model):
        if model != "loaded":
            raise TunelabError(f"a local model runs on the loaded model (loaded); '{model}' is not it")

    def fingerprint(self, model):
        return "loaded-weights"


def test_the_search_runs_on_the_model_given_and_its_evals_are_tagged_in_history(home):
    """`model=`: every round's eval is of that model (the TUI's worker runs the one it loaded, never `demo`);
    each round's history record is tagged `optimize`, the last noted with what the search found."""
    from core.history.query import parse_query
    from core.history.store import History

    workbench = Workbench(home)
    result = optimize(
        workbench, "senti", START, EvalRequest("demo", "eval", grader="labels", limit=24), OnOneModel(),
        budget=200, model="loaded",
    )  # fmt: skip
    evals = workbench.evals.list()
    assert evals and {v.model for e in evals for v in e.variants} == {"loaded"}
    tagged = History(home).search(parse_query("tag:optimize")).rows
    assert len(tagged) == len(evals) and all(row["note"] for row in tagged)
    last = History(home).get(tagged[0]["id"])
    assert last["ref"] == result.final.id
    assert f"best senti@{result.best.id[:6]}" in last["note"] and f"in {result.search.calls} calls" in last["note"]
    assert History(home).search(parse_query("optimize senti")).rows  # a search word finds the note


def test_a_lora_trained_with_one_of_two_prompts_that_differ_only_in_the_system_is_named_by_it(home):
    """An optimized prompt often keeps the template and rewrites the instruction: the verdict tells the LoRA
    trained with it from the one trained with the start, and warns where each is used with the other."""
    from core.evals.plan import Variant
    from core.training.config import TrainConfig
    from core.workbench.service import PromptRef
    from tests.seeded import finished_run

    other = PromptVersion(
        START.template, system="Answer with one of: negative, positive.", mode="raw", params=START.params
    )
    run_id = finished_run(
        home, config=TrainConfig(template=START.template, system=other.system, mode="raw", max_steps=2), adapter=True
    )
    workbench = Workbench(home)
    refs = [PromptRef("senti", START, new=True), PromptRef("senti-opt", other, new=True)]
    summary = workbench.run_eval(
        EvalRequest("demo", "eval", grader="labels", limit=6),
        [Variant(r.name, r.version, "demo", run_id) for r in refs],
        ScriptedBackend(),
        new_prompts=refs,
    )
    judged = workbench.verdicts.comparison(summary)
    assert judged.grid.rows[0].trained_on == f"senti-opt@{other.id[:6]} raw"
    assert [f.prompt_id for f in judged.foreign] == [START.id]  # used with the start: foreign; with its own: not
