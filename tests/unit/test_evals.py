"""The eval runner on a scripted backend (fast), and once on the real demo model."""

import json
import threading
from dataclasses import replace

import pytest
from tinydb import TinyDB

from core.data.datasets import load_dataset
from core.data.prompts import PromptVersion
from core.engine.engines import HostEngine, LocalEngine
from core.engine.options import ModelOptions
from core.engine.protocol import GenResult
from core.errors import TunelabError
from core.evals.cache import GenerationCache
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval
from core.evals.stored import EvalRuns, baseline_diff
from core.history.query import parse_query
from core.history.store import History
from tests.fakes import scripted_answer


class ScriptedBackend(LocalEngine):
    """A local engine that runs `scripted_answer` for each prompt, in process."""

    numerics = "float32@cpu"

    def __init__(self):
        self.calls = []

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        self.calls.append(len(prompts))
        for i, p in enumerate(prompts):
            if cancel.is_set():
                return
            on_result(i, GenResult(scripted_answer(p, params), "eos", 2, 0.01))


PROMPT = PromptVersion("Review: {{text}}\nSentiment:", mode="raw", params={"max_new_tokens": 4})
SMARTER = PromptVersion("{{text}}\nSentiment (positive or negative):", mode="raw", params={"max_new_tokens": 3})
REQ = EvalRequest("demo", "eval", grader="labels", limit=20)


def test_two_variants_are_graded_and_stored(home):
    backend = ScriptedBackend()
    rows = []
    summary = run_eval(home, REQ, [Variant("no prompt", None), Variant("senti", PROMPT)], backend, on_row=rows.append)
    raw, prompted = summary.variants
    assert raw.trials == prompted.trials == 20 and raw.passed == 0
    assert prompted.pass_rate > 0.6 and prompted.ci[0] < prompted.pass_rate < prompted.ci[1]
    assert prompted.label == f"senti@{PROMPT.id[:6]} raw | demo" and raw.label == "no prompt | demo"
    assert len(rows) == 40 and {r.variant for r in rows} == {0, 1}
    folder = home / "evals" / summary.id
    assert len((folder / "results.jsonl").read_text().splitlines()) == 40
    assert json.loads((folder / "summary.json").read_text())["items"]["1"]
    assert EvalRuns(home).list()[0].id == summary.id and not hasattr(EvalRuns(home).list()[0], "items")
    entry = History(home).search(parse_query("kind:eval")).rows[0]  # browsable with the generations
    assert entry["ref"] == summary.id and entry["prompt_name"] == "senti"
    assert History(home).get(entry["id"])["output"].splitlines()[0] == "no prompt | demo: 0.0% (0/20)"


class Thinks(ScriptedBackend):
    """A reasoning model: each answer comes after a think block; the last prompt's thinking never closes."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        def thinking(i, result):
            answer = result.output
            closed = f"</think>\n\n{answer}" if i < len(prompts) - 1 else ""
            on_result(i, replace(result, output=f"<think>\nThe review reads {answer}.\n{closed}"))

        super().batch(model, adapter, prompts, params, thinking, cancel)


def test_a_reasoning_models_thinking_is_not_graded_only_its_answer(home):
    plain = run_eval(home, REQ, [Variant("senti", PROMPT)], ScriptedBackend())
    rows = []
    thinking = run_eval(home, replace(REQ, use_cache=False), [Variant("senti", PROMPT)], Thinks(), on_row=rows.append)
    unclosed = {r.item for r in rows if "</think>" not in r.output}
    assert len(unclosed) == 1 and all(r.output.startswith("<think>") for r in rows)  # stored whole
    want = {i: v.passed and i not in unclosed for i, v in plain.scores(0).items()}
    assert {i: v.passed for i, v in thinking.scores(0).items()} == want and any(want.values())


def test_a_promptfoo_csv_is_graded_by_each_rows_assertions(home, tmp_path):
    tests = tmp_path / "tests.csv"
    tests.write_text(
        "text,__expected\n"
        "I love it,positive\n"  # the scripted model says positive: equal, passes
        "Great and happy,contains: pos\n"  # positive: passes
        "Terrible,not-contains: positive\n"  # negative: passes
        "Awful,contains: positive\n",  # negative: fails
        encoding="utf-8",
    )
    rows = []
    request = EvalRequest(str(tests), "auto", grader="labels")  # the form's grader: not what these rows ask
    summary = run_eval(home, request, [Variant("senti", PROMPT)], ScriptedBackend(), on_row=rows.append)
    order = [it.id for it in load_dataset(str(tests)).items]  # rows are named by content: file order
    assert [r.passed for r in sorted(rows, key=lambda r: order.index(r.item))] == [True, True, True, False]
    assert summary.variants[0].passed == 3 and summary.grader == "each row's __expected"


def test_a_promptfoo_row_with_no_answer_to_train_on_says_how_to_give_one(tmp_path, demo_loaded):
    from core.data.datasets import load_dataset
    from core.training.config import TrainConfig
    from core.training.data import encode

    tests = tmp_path / "tests.csv"
    tests.write_text("text,__expected\nI love it,positive\nGreat,contains: pos\n", encoding="utf-8")
    first, second = load_dataset(str(tests)).items
    assert encode(demo_loaded, TrainConfig(), None, first).ids  # a bare value is the answer
    with pytest.raises(TunelabError, match=r"^tests.csv:3: no expected answer to train on \(a bare value or equals:"):
        encode(demo_loaded, TrainConfig(), None, second)


def test_identical_calls_come_from_the_cache(home):
    first = ScriptedBackend()
    run_eval(home, REQ, [Variant("senti", PROMPT)], first)
    again = ScriptedBackend()
    summary = run_eval(home, REQ, [Variant("senti", PROMPT)], again)
    assert again.calls == [] and summary.variants[0].cached == 20
    bypass = ScriptedBackend()
    run_eval(
        home,
        EvalRequest("demo", "eval", grader="labels", limit=20, use_cache=False),
        [Variant("senti", PROMPT)],
        bypass,
    )
    assert bypass.calls == [20]
    changed = ScriptedBackend()
    run_eval(home, REQ, [Variant("senti", SMARTER)], changed)
    assert changed.calls == [20]
    in_bf16 = ScriptedBackend()
    in_bf16.numerics = ModelOptions(dtype="bfloat16").numerics()  # another precision: other outputs
    run_eval(home, REQ, [Variant("senti", PROMPT)], in_bf16)
    assert in_bf16.calls == [20]


def test_repeats_aggregate_per_item(home):
    sampled = PromptVersion("Review: {{text}}\nSentiment:", params={"temperature": 0.9, "seed": 4})
    summary = run_eval(
        home,
        EvalRequest("demo", "eval", grader="contains:positive", repeat=3, limit=6),
        [Variant("s", sampled)],
        ScriptedBackend(),
    )
    assert summary.variants[0].trials == 18
    per_item = summary.scores(0)
    assert len(per_item) == 6 and all(v.distinct == 2 for v in per_item.values())
    assert all(v.majority.endswith("#0") for v in per_item.values())  # seeds 4 and 6 vs 5


def test_template_errors_stop_the_run_before_any_generation(home):
    backend = ScriptedBackend()
    with pytest.raises(TunelabError, match=r"^eval.jsonl:1: template variable '\{\{review\}\}' has no value"):
        run_eval(home, REQ, [Variant("bad", PromptVersion("{{review}}"))], backend)
    assert backend.calls == [] and not (home / "evals").exists()


def test_baseline_pin_shows_fixed_and_broken(home):
    runs = EvalRuns(home)
    base = run_eval(home, REQ, [Variant("no prompt", None)], ScriptedBackend())
    runs.pin(base.id)
    pinned, variant = runs.baseline_for("demo", "eval")
    assert pinned.id == base.id and variant == 0
    later = run_eval(home, REQ, [Variant("senti", PROMPT)], ScriptedBackend())
    diff = baseline_diff(later, pinned, variant)[0]
    assert diff["delta"] == later.variants[0].pass_rate > 0
    assert len(diff["fixed"]) == later.variants[0].passed and diff["broken"] == []
    assert baseline_diff(pinned, later, 0)[0]["broken"] == diff["fixed"]
    with pytest.raises(TunelabError, match="has no variant 3"):
        runs.pin(base.id, 3)


def test_cancel_stops_early_and_is_recorded(home):
    cancel = threading.Event()
    summary = run_eval(
        home,
        REQ,
        [Variant("senti", PROMPT), Variant("smarter", SMARTER)],
        ScriptedBackend(),
        on_row=lambda row: cancel.set(),
        cancel=cancel,
    )
    assert summary.status == "cancelled" and summary.variants[0].trials == 1
    assert summary.variants[1].trials == 0
    with pytest.raises(TunelabError, match="is cancelled: only a complete eval is a baseline"):
        EvalRuns(home).pin(summary.id)


class CrashesMidway(ScriptedBackend):
    """A worker that dies after a few items, or a ctrl+c there."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        for i, p in enumerate(prompts[:5]):
            on_result(i, GenResult(scripted_answer(p, params), "eos"))
        raise self.error


@pytest.mark.parametrize(
    "error, status", [(TunelabError("model worker exited (signal 9)"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_an_eval_that_dies_midway_is_stored_partial_and_listed(home, error, status):
    with pytest.raises(type(error)):
        run_eval(home, REQ, [Variant("senti", PROMPT)], CrashesMidway(error))
    (listed,) = EvalRuns(home).list()
    assert listed.status == status and listed.variants[0].trials == 5
    summary = EvalRuns(home).load(listed.id)
    assert summary.scores(0) and (status == "interrupted" or "model worker exited" in summary.error)
    assert History(home).search(parse_query("kind:eval")).rows
    with pytest.raises(TunelabError, match=f"is {status}: only a complete eval is a baseline"):
        EvalRuns(home).pin(listed.id)


class CancelledMidBatch(ScriptedBackend):
    """A batch cancelled half way, as the model host reports it: the first half whole, the rest cut short."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        self.calls.append(len(prompts))
        for i, p in enumerate(prompts):
            whole = scripted_answer(p, params)
            if i == len(prompts) // 2:
                cancel.set()
            cut = cancel.is_set()
            on_result(i, GenResult(whole[:1] if cut else whole, "cancelled" if cut else "eos"))


def test_a_cancelled_eval_caches_and_grades_only_whole_outputs(home):
    cancel = threading.Event()
    cancelled = run_eval(home, REQ, [Variant("senti", PROMPT)], CancelledMidBatch(), cancel=cancel)
    assert cancelled.status == "cancelled" and cancelled.variants[0].trials == 10
    cache_rows = [json.loads(shard.read_text()) for shard in (home / "cache").glob("*.json")]
    stored = [doc["r"] for shard in cache_rows for doc in shard.get("_default", {}).values()]
    assert len(stored) == 10 and all(r["stop_reason"] == "eos" for r in stored)
    again = ScriptedBackend()
    summary = run_eval(home, REQ, [Variant("senti", PROMPT)], again)
    assert again.calls == [10] and summary.variants[0].cached == 10
    fresh = run_eval(
        home,
        EvalRequest("demo", "eval", grader="labels", limit=20, use_cache=False),
        [Variant("senti", PROMPT)],
        ScriptedBackend(),
    )
    assert summary.variants[0].passed == fresh.variants[0].passed


def test_outputs_cut_short_that_an_old_version_cached_are_not_reused(home):
    keys = {
        "k" * 64: {"output": "pos", "stop_reason": "cancelled"},
        "j" * 64: {"output": "positive", "stop_reason": "eos"},
    }
    cache = GenerationCache(home)
    for key, result in keys.items():  # written as 0.1.0 did, around the filter
        with TinyDB(cache._shard(key)) as db:
            db.insert({"k": key, "r": result})
    assert list(cache.get_many(list(keys))) == ["j" * 64]


@pytest.mark.slow
def test_real_demo_model_batched_eval_then_cached(home):
    variants = [Variant("no prompt", None), Variant("senti", PROMPT)]
    summary = run_eval(
        home, EvalRequest("demo", "eval", grader="labels", limit=32), variants, HostEngine(ModelOptions())
    )
    assert [v.trials for v in summary.variants] == [32, 32]
    assert all(v.mean_completion_tokens > 0 for v in summary.variants)
    again = run_eval(home, EvalRequest("demo", "eval", grader="labels", limit=32), variants, HostEngine(ModelOptions()))
    assert [v.cached for v in again.variants] == [32, 32]
    assert [v.pass_rate for v in again.variants] == [v.pass_rate for v in summary.variants]


def test_identical_calls_within_one_run_are_computed_once(home):
    backend = ScriptedBackend()
    summary = run_eval(home, REQ, [Variant("a", PROMPT), Variant("b", PROMPT)], backend)
    assert backend.calls == [20]
    assert [v.cached for v in summary.variants] == [0, 20]
    assert summary.variants[0].pass_rate == summary.variants[1].pass_rate


def test_eval_rows_of_another_shape_are_left_out_and_a_bad_summary_is_one_line(home):
    from core.storage.meta import Meta

    summary = run_eval(home, REQ, [Variant("senti", PROMPT)], ScriptedBackend())
    Meta(home).write(lambda db: db.table("eval_runs").insert({"id": "e-odd", "variants": "x"}))
    assert [r.id for r in EvalRuns(home).list()] == [summary.id]
    (home / "evals" / summary.id / "summary.json").write_text("[1, 2]")
    with pytest.raises(TunelabError, match="summary.json: not an eval summary"):
        EvalRuns(home).load(summary.id)


def test_a_cancelled_eval_resumes_to_completion_from_the_cache(home):
    from core.workbench.service import PromptRef, Workbench

    bench = Workbench(home)
    variants = [Variant("senti", PROMPT)]
    cancelled = bench.run_eval(REQ, variants, CancelledMidBatch(), new_prompts=[PromptRef("senti", PROMPT, new=True)])
    assert cancelled.status == "cancelled" and cancelled.request["limit"] == 20
    again = ScriptedBackend()
    resumed = bench.resume_eval(cancelled.id, again)
    assert resumed.status == "done" and resumed.variants[0].trials == 20
    assert again.calls == [10] and resumed.variants[0].cached == 10  # only what the cancel left undone
    with pytest.raises(TunelabError, match="is complete: nothing to resume"):
        bench.resume_eval(resumed.id, ScriptedBackend())


class Answers(ScriptedBackend):
    """Answers each prompt from a table (by the prompt's text)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        for i, p in enumerate(prompts):
            on_result(i, GenResult(self.table[p.text], "eos", latency_s=0.01))


def test_a_list_expected_means_any_of_its_answers(home, tmp_path):
    """QA sets ship lists meaning "any of these": each grader passes on any one; the first is the training
    answer; results and the summary show them all. A list in a list is one line naming file, row, field."""
    from core.data.datasets import load_dataset

    data = tmp_path / "qa.jsonl"
    rows = [
        {"id": "q1", "question": "Capital of France?", "expected": ["Paris", "Paris, France"]},
        {"id": "q2", "question": "2+2?", "expected": [4, "four"]},
        {"id": "q3", "question": "Sky?", "expected": "blue"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = {it.id: it for it in load_dataset(str(data)).items}
    assert items["q1"].expected == "Paris" and items["q1"].accepted == ("Paris", "Paris, France")
    assert items["q2"].expected == "4" and items["q3"].accepted == ("blue",)
    outputs = {"Capital of France?": "Paris, France.", "2+2?": "four", "Sky?": "green"}
    request = EvalRequest(str(data), None, grader="exact")
    summary = run_eval(home, request, [Variant("no prompt", None)], Answers(outputs))
    passed = {item: agg.passed for item, agg in summary.scores(0).items()}
    assert passed == {"q1": True, "q2": True, "q3": False}
    assert summary.scores(0)["q1"].expected == "Paris | Paris, France"
    nested = tmp_path / "nested.jsonl"
    nested.write_text(json.dumps({"id": "x", "question": "?", "expected": ["a", ["b"]]}) + "\n")
    with pytest.raises(TunelabError, match=r"nested.jsonl:1: field 'expected'\[1\] is a list"):
        load_dataset(str(nested))


class JudgingBackend(ScriptedBackend):
    """Answers the judge's questions PASS when the output is `positive`; everything else as scripted."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        if "strict grader" not in (prompts[0].system or ""):
            return super().batch(model, adapter, prompts, params, on_result, cancel)
        self.calls.append(("judge", len(prompts)))
        for i, p in enumerate(prompts):
            verdict = "PASS" if "OUTPUT:\npositive" in p.text else "FAIL"
            on_result(i, GenResult(f"{verdict}\nreasons", "eos", 2, extra={"prompt_tokens": 9}))


def test_a_local_judge_grades_in_one_batch_after_the_generations(home):
    backend = JudgingBackend()
    request = replace(REQ, grader="judge:Is it positive?", judge="demo", limit=6)
    summary = run_eval(home, request, [Variant("senti", PROMPT)], backend)
    assert backend.calls == [6, ("judge", 6)]  # the generations, then every question in one batch
    assert summary.judge.calls == 6 and summary.judge.errors == 0
    assert 0 < summary.variants[0].passed < 6  # PASS exactly where the output was positive
    again = run_eval(home, request, [Variant("senti", PROMPT)], backend)
    assert backend.calls[2:] == [] and again.judge.cached == 6  # answers and generations cached


def test_a_local_judge_other_than_the_workers_model_is_refused_before_anything_runs(home):
    from core.engine.engines import WorkerEngine

    backend = WorkerEngine(None, "demo", "float32@cpu")
    request = replace(REQ, grader="judge:Is it positive?", judge="core/demo/other-model")
    with pytest.raises(
        TunelabError, match=r"judge core/demo/other-model: a local model runs on the loaded model \(demo\)"
    ):
        run_eval(home, request, [Variant("senti", PROMPT)], backend)
