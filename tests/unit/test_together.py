"""Traces, p->w->p and a distilled prompt on a scripted model: only the passing outputs of training rows are kept
(ids and the source rows kept for the seal), and the verdict gains rows that say what they are. Training runs are
faked as ending done at once (the one real run is tests/integration/test_together.py)."""

import json
from dataclasses import replace

import pytest

from core.data.datasets import Item, load_dataset
from core.data.prompts import PromptVersion
from core.data.seals import check_seal
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.evals.grid import RowKind
from core.evals.plan import EvalRequest
from core.evals.report import costs
from core.storage.runfolders import read_ledger
from core.training.runs import Runs
from core.workbench.service import PromptRef, Workbench
from core.workbench.together import Steps, compare_together
from core.workbench.traces import prompt_traces
from tests.seeded import finish
from tests.unit.test_evals import ScriptedBackend
from tests.unit.test_optimize import FollowsInstructions


class Chatty(ScriptedBackend):
    """The scripted model's answer in a sentence: a passing output that is not the expected text itself."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        said = lambda i, result: on_result(i, replace(result, output=f"{result.output}, I think."))  # noqa: E731
        super().batch(model, adapter, prompts, params, said, cancel)


SENTI = PromptVersion("Review: {{text}}\nSentiment:", mode="raw", params={"max_new_tokens": 4})
DEV = EvalRequest("demo", "eval", grader="labels", limit=24, holdout=0.2)  # a sealed test split carved too


def test_traces_keep_the_passing_outputs_of_training_rows_only_with_their_ids(home):
    workbench = Workbench(home)
    traces = prompt_traces(workbench, PromptRef("senti", SENTI, new=True), DEV, Chatty(), model="demo")
    dataset = DEV.selection.load()
    train = {it.id: it for it in dataset.split("train")}
    ran = workbench.evals.load(traces.eval_id)
    assert ran.split == "train" and ran.n_items == len(train) == traces.tried  # every training row, no other
    passed = {i for i, score in ran.scores(0).items() if score.passed}
    rows = [json.loads(line) for line in traces.path.read_text().splitlines()]
    assert {r["id"] for r in rows} == passed and 0 < len(passed) < len(train) == 480  # the failing ones left out
    for row in rows:  # the input as the row had it, the scripted model's output as its answer
        source = train[row["id"]]
        assert row["text"] == source.vars["text"] and row["derived_from"] == source.digest
        assert row["expected"] == ran.scores(0)[row["id"]].majority == f"{source.expected}, I think."
        assert row["split"] == "train"
    derived = load_dataset(str(traces.path), expected="expected")
    assert derived.splits == ("train",) and {it.id for it in derived.items} == passed
    assert not passed & {it.id for it in dataset.items if it.split != "train"}  # never eval or sealed rows
    note = json.loads(traces.path.with_suffix(".json").read_text())
    assert note["kind"] == "traces" and note["prompt"] == f"senti@{SENTI.id[:6]} raw" and note["kept"] == len(passed)


def test_a_run_on_traces_is_ledgered_as_its_source_rows_so_the_seal_still_holds(home):
    workbench = Workbench(home)
    traces = prompt_traces(workbench, PromptRef("senti", SENTI, new=True), DEV, Chatty(), model="demo")
    config = workbench.train_config(
        {"split": "train", "eval_split": None}, options=ModelOptions("demo"), dataset=str(traces.path),
        expected=traces.expected, prompt=SENTI,
    )  # fmt: skip
    run_id = workbench.runs.create(config)
    finish(workbench.runs.path(run_id), 1, adapter=True)
    sources = {json.loads(line)["derived_from"][:16] for line in traces.path.read_text().splitlines()}
    assert read_ledger(workbench.runs.path(run_id)) == sources
    source = next(it for it in DEV.selection.load().split("train") if it.digest[:16] in sources)
    as_sealed = Item(source.id, source.vars, source.expected, "test.jsonl:1", "test", digest=source.digest)
    with pytest.raises(TunelabError, match=f"adapter {run_id} trained on 1 of the 1 sealed rows"):
        check_seal(home, [run_id], [as_sealed])


def test_traces_of_a_prompt_that_passes_nothing_train_nothing(home):
    never = PromptVersion("{{text}}", mode="raw")  # the scripted model rambles: nothing passes
    with pytest.raises(TunelabError, match=r"passed none of the 480 training rows: no traces to train on"):
        prompt_traces(Workbench(home), PromptRef("bare", never, new=True), DEV, ScriptedBackend(), model="demo")
    assert not list((home / "derived").glob("*.jsonl"))


@pytest.fixture
def trains_at_once(monkeypatch):
    """Each run's process faked as ending done at once, with an adapter and 12 steps of 100 tokens."""
    monkeypatch.setattr(Runs, "launch", lambda runs, run_id, *_, **__: finish(runs.path(run_id), 12, adapter=True))


GOOD = ("love", "great", "excellent", "perfect", "fantastic")  # FollowsInstructions' words


class LoRAWantsAnother(FollowsInstructions):
    """As `FollowsInstructions` on the base; with a LoRA, a keyword classifier under the "You label inputs"
    instruction and `positive` under any other (so the search on the LoRA finds another prompt than on the base)."""

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        from core.engine.protocol import GenResult

        if adapter is None:
            return super().batch(model, adapter, prompts, params, on_result, cancel)
        for i, p in enumerate(prompts):
            good = "label inputs" not in p.system or any(w in p.text.lower() for w in GOOD)
            on_result(i, GenResult("positive" if good else "negative", "eos", 1))


def test_both_together_adds_the_p_w_and_p_w_p_rows_each_search_and_lora_counted(home, trains_at_once):
    workbench = Workbench(home)
    start = PromptRef("senti", PromptVersion("{{text}}", mode="raw", params={"max_new_tokens": 4}), new=True)
    request = EvalRequest("demo", "eval", grader="labels", limit=24)
    plan = workbench.compare_plan(request, ModelOptions("demo"), [start])
    done = compare_together(workbench, plan, LoRAWantsAnother(), Steps(request, budget=200, trace_rows=40), both=True)
    judged = done.comparison
    grid = judged.grid
    assert [(row.kind, row.stage) for row in grid.rows] == [
        (RowKind.BASE, ""), (RowKind.LORA, "p->w"), (RowKind.LORA, "p->w->p"),
    ]  # fmt: skip
    assert [col.label.split("@")[0] for col in grid.cols] == ["no prompt", "senti", "senti-opt", "senti-pwp"]
    lora = grid.rows[1].adapters[0]
    assert grid.rows[2].adapters == (lora,) and grid.rows[1].source == grid.cols[2].key
    assert grid.rows[1].label == f"demo+{lora[:9]} p->w (traces of {grid.cols[2].label})"
    assert grid.rows[2].label == f"demo+{lora[:9]} p->w->p ({grid.cols[3].label.split(' ')[0]} raw re-optimized on it)"
    assert sorted(grid.cells) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 2), (2, 3)]  # the LoRA with its prompts only
    assert grid.cell(2, 3).label.startswith(f"p->w->p: {grid.cols[3].label} | demo+")
    assert grid.cell(1, 2).label.startswith(f"p->w: {grid.cols[2].label} | demo+")
    assert grid.cell(2, 3).pass_rate > grid.cell(1, 2).pass_rate  # the prompt searched on the LoRA does better
    assert f"(p->w->p: {grid.cols[3].label} | demo+" in judged.verdict.sentence
    assert workbench.prompts.get(grid.cols[3].key)[1].system.startswith("You label inputs")  # another instruction
    assert not judged.foreign  # the prompt optimized on the LoRA is no foreign prompt
    assert judged.tried.loras == 1 and judged.tried.versions >= 2 * 10  # both searches' candidates counted
    on_lora = [e for e in workbench.evals.list() if e.split == "eval" and e.variants[0].adapter == lora]
    assert len(on_lora) >= 2  # the second search's rounds ran on the LoRA
    assert [line.split(":")[0] for line in done.lines] == ["p", "traces", "w", "p again"]


def test_a_distilled_lora_sits_beside_the_prompt_it_replaces_with_the_tokens_it_saves(home, trains_at_once):
    class Distils(ScriptedBackend):
        """Prompt tokens are the prompt's words; with a LoRA, the prompt's answers from the input alone."""

        def batch(self, model, adapter, prompts, params, on_result, cancel):
            from core.engine.protocol import GenResult
            from tests.fakes import scripted_answer

            for i, p in enumerate(prompts):
                asked = replace(p, text=f"{p.text}\nSentiment:") if adapter else p
                answer = scripted_answer(asked, params)
                on_result(i, GenResult(answer, "eos", 1, extra={"prompt_tokens": len(p.text.split())}))

    workbench = Workbench(home)
    request = EvalRequest("demo", "eval", grader="labels", limit=24)
    plan = workbench.compare_plan(request, ModelOptions("demo"), [])
    source = PromptRef("senti", SENTI, new=True)
    done = compare_together(workbench, plan, Distils(), Steps(request, trace_rows=40), distill=source)
    grid = done.comparison.grid
    assert [row.kind for row in grid.rows] == [RowKind.BASE, RowKind.DISTILLED]
    lora, label = grid.rows[1].adapters[0], f"senti@{SENTI.id[:6]} raw"
    assert grid.rows[1].label == f"demo+{lora[:9]} distilled from {label}" and grid.rows[1].source == SENTI.id
    assert sorted(grid.cells) == [(0, 0), (0, 1), (1, 0)]  # used with no prompt only
    assert grid.cell(1, 0).label == f"distilled from {label}: no prompt | demo+{lora[:9]}"
    assert grid.cell(1, 0).pass_rate == grid.cell(0, 1).pass_rate > 0.5
    assert f"(distilled from {label}: no prompt" in done.comparison.verdict.sentence
    config = workbench.runs.train_config(lora)
    assert config.template == "" and config.dataset.startswith(str(home / "derived"))  # the input alone
    line = next(c for c in costs(grid) if "with no prompt, beside" in c)
    rate = f"{grid.cell(1, 0).pass_rate * 100:.1f}%"
    assert line.startswith(f"demo+{lora[:9]} distilled from {label}: {rate} [") and f"beside {label}'s {rate}" in line
    # "Review:" and "Sentiment:": 2 prompt tokens a call; 12 steps of 100 tokens trained, 3 passes each: 1,800 calls
    assert line.endswith("; 2 prompt tokens per call saved; break-even after 1,800 calls (its training read 1,200 "
                         "tokens, each about 3 forward passes)")  # fmt: skip


def test_compare_both_together_on_the_command_line(home, trains_at_once, tmp_path, capsys, monkeypatch):
    """The flags reach the same use case: the scripted model in place of the local one, each step said."""
    import core.engine.engines as engines
    from tests.conftest import here

    monkeypatch.setattr(engines, "HostEngine", lambda options, *_, **__: LoRAWantsAnother())
    prompt = tmp_path / "senti.toml"
    prompt.write_text('name = "senti"\nmode = "raw"\ntemplate = "{{text}}"\n[params]\nmax_new_tokens = 4\n')
    flags = ["compare", "--prompt", str(prompt), "--limit", "24", "--json"]
    done = here(capsys, *flags, "--both-together", "--optimize", "200", "--trace-rows", "40")
    assert done.returncode == 0, done.stderr[-2000:]
    steps = ("p", "traces", "w", "p again")
    said = [head for line in done.stderr.splitlines() if (head := line.split(":")[0]) in steps]
    assert said == list(steps) and "passed" in done.stderr.split("traces: ")[1]
    rows = json.loads(done.stdout)["grid"]["rows"]
    assert [(r["kind"], r["stage"]) for r in rows] == [("base", ""), ("lora", "p->w"), ("lora", "p->w->p")]
    for bad, why in (
        ([], "--both-together needs a --prompt to start the search from"),
        ([*flags[1:3], "--checkpoint", "best"], "--checkpoint best scores checkpoints"),
        ([*flags[1:3], "--trace-rows", "0"], "--trace-rows must be at least 1, got 0"),
    ):
        refused = here(capsys, "compare", "--both-together", *bad)
        assert refused.returncode == 2 and why in refused.stderr
    alone = here(capsys, *flags[:3], "--trace-rows", "8")
    assert alone.returncode == 2 and "--trace-rows goes with --both-together or --distill" in alone.stderr
