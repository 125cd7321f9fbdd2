"""k-shot prompts: demonstrations from the training rows only, chosen by a rule (fixed, random, similar,
bootstrapped) that is part of the version's id, rendered as chat turns or raw examples."""

import json
from dataclasses import replace

import pytest

from core.data.datasets import load_dataset
from core.data.prompts import PromptVersion, item_prompt, read_prompt_file
from core.data.shots import BM25, Demonstrations, Shots
from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval
from tests.unit.test_evals import ScriptedBackend

RAW = PromptVersion("{{text}} Overall, this review is", mode="raw")


def demo():
    return load_dataset("demo")


def test_shots_are_part_of_the_id_and_a_zero_shot_id_is_unchanged():
    assert PromptVersion(RAW.template, mode="raw", shots=Shots(0)).id == RAW.id
    ids = {
        PromptVersion(RAW.template, mode="raw", shots=s).id
        for s in (Shots(4), Shots(4, seed=1), Shots(4, "similar"), Shots(2))
    }
    assert len(ids) == 4 and RAW.id not in ids
    with pytest.raises(TunelabError, match="shots must be a whole number from 0 to 64"):
        Shots(65)
    with pytest.raises(TunelabError, match="select must be one of fixed, random, similar, bootstrapped"):
        Shots(2, "nearest")


def test_raw_demonstrations_are_rendered_examples_before_the_item_or_at_demos():
    data = demo()
    pool, item = data.split("train"), data.split("eval")[0]
    version = PromptVersion(RAW.template, mode="raw", shots=Shots(2, separator="\n---\n"))
    chosen = Demonstrations(version.shots, pool, "demo").for_item(item)
    text = item_prompt(version, item, demos=chosen).text
    first = f"{chosen[0].vars['text']} Overall, this review is {chosen[0].expected}"
    assert text.startswith(first + "\n---\n") and text.endswith(f"{item.vars['text']} Overall, this review is")
    placed = PromptVersion("Examples:\n{{demos}}\n\nNow: {{text}} ->", mode="raw", shots=Shots(2))
    assert item_prompt(placed, item, demos=chosen).text.startswith(f"Examples:\nNow: {chosen[0].vars['text']} -> ")
    assert item_prompt(placed, item).text == f"Examples:\n\n\nNow: {item.vars['text']} ->"  # zero-shot: empty


def test_chat_demonstrations_are_user_and_assistant_turns_before_the_item():
    data = demo()
    item = data.split("eval")[0]
    version = PromptVersion("{{text}}", system="Label the review.", mode="chat", shots=Shots(3, seed=5))
    chosen = Demonstrations(version.shots, data.split("train"), "demo").for_item(item)
    prompt = item_prompt(version, item, demos=chosen)
    assert [m["role"] for m in prompt.messages] == ["user", "assistant"] * 3 + ["user"]
    assert prompt.messages[1]["content"] == chosen[0].expected and prompt.messages[-1]["content"] == item.vars["text"]
    assert prompt.system == "Label the review."


def test_random_demonstrations_are_seeded_and_shared_and_similar_ones_follow_the_item():
    data = demo()
    pool, items = data.split("train"), data.split("eval")[:5]
    rand = Demonstrations(Shots(4, seed=3), pool, "demo")
    assert len({tuple(d.id for d in rand.for_item(it)) for it in items}) == 1  # one shared prefix
    assert [d.id for d in rand.for_item(items[0])] == [
        d.id for d in Demonstrations(Shots(4, seed=3), pool, "demo").for_item(items[0])
    ]
    assert [d.id for d in rand.for_item(items[0])] != [
        d.id for d in Demonstrations(Shots(4, seed=4), pool, "demo").for_item(items[0])
    ]
    similar = Demonstrations(Shots(3, "similar"), pool, "demo")
    picked = similar.for_item(items[0])
    words = set(items[0].vars["text"].lower().split())
    overlap = lambda it: len(words & set(it.vars["text"].lower().split()))  # noqa: E731
    assert overlap(picked[0]) >= sorted(map(overlap, pool))[len(pool) // 2]  # more alike than the median row
    assert BM25(["red apple", "green pear", "red red apple pie"]).top("red apple", 2) == [0, 2]  # shorter first


def test_demonstrations_come_from_training_rows_only(home):
    data = demo()
    eval_row = data.split("eval")[0]
    with pytest.raises(TunelabError, match=rf"demonstration row '{eval_row.id}' is not a training row of demo"):
        Demonstrations(Shots(1, "fixed", rows=(eval_row.id,)), data.split("train"), "demo")
    version = PromptVersion(RAW.template, mode="raw", shots=Shots(4, seed=1))
    backend = SeesPrompts()
    run_eval(home, EvalRequest("demo", "eval", grader="labels", limit=10), [Variant("senti", version)], backend)
    shown = "\n".join(backend.texts)
    eval_texts = [it.vars["text"] for it in data.split("eval")]
    train_texts = {it.vars["text"] for it in data.split("train")}
    for text in backend.texts:  # each prompt: 4 training rows, then its own eval item
        examples = text.split("\n\n")
        assert len(examples) == 5 and all(e.rsplit(" Overall", 1)[0] in train_texts for e in examples[:4])
    assert sum(t in shown for t in eval_texts) == 10  # each eval item once: as the item, never as a demonstration


class SeesPrompts(ScriptedBackend):
    def __init__(self):
        super().__init__()
        self.texts = []

    def batch(self, model, adapter, prompts, params, on_result, cancel):
        self.texts += [p.text for p in prompts]
        super().batch(model, adapter, prompts, params, on_result, cancel)


def test_a_prompt_file_declares_shots_and_the_label_says_them(tmp_path):
    path = tmp_path / "senti.toml"
    path.write_text('name = "senti"\nmode = "raw"\ntemplate = "{{text}} is"\nshots = 4\nselect = "similar"\n')
    name, version = read_prompt_file(path)
    assert name == "senti" and version.shots == Shots(4, "similar")
    assert Variant(name, version).label.startswith(f"senti@{version.id[:6]} raw 4-shot similar | ")
    assert (
        "shots:" in version.as_text() and PromptVersion.from_dict(json.loads(json.dumps(version.to_dict()))) == version
    )
    path.write_text('template = "{{text}}"\nshots = 2\nselect = "fixed"\n')
    with pytest.raises(TunelabError, match="select fixed lists its rows: 0 listed for 2 shots"):
        read_prompt_file(path)


def test_the_grid_column_and_a_single_generation_carry_the_shots(home):
    from core.data.datasets import Selection
    from core.evals.grid import build_grid
    from core.workbench.service import Workbench

    version = PromptVersion(RAW.template, mode="raw", shots=Shots(3, seed=2))
    summary = run_eval(
        home, EvalRequest("demo", "eval", grader="labels", limit=4), [Variant("senti", version)], ScriptedBackend()
    )
    assert build_grid(summary).cols[0].label == f"senti@{version.id[:6]} raw 3-shot random"
    assert summary.variants[0].notes == ["3-shot random: demonstrations drawn from 3 of the 480 training rows"]
    prompt = Workbench(home).fill_prompt(version, Selection("demo", "eval"))
    assert prompt.text.count(" Overall, this review is") == 4  # three examples, then the first eval row


def test_the_cost_lines_give_a_k_shot_prompts_tokens_and_the_break_even_against_a_lora():
    from core.evals.grid import Column, Grid, Row, RowKind
    from core.evals.report import costs

    grid = Grid(
        [
            Row("b", "demo (base)", "demo", RowKind.BASE),
            Row("l", "demo+t1 as is", "demo", RowKind.LORA, ("t1",), "as is", {"train_s": 14.0}),
        ],
        [
            Column("", "no prompt", None),
            Column("p", "senti@abc 8-shot random", "t", {"extra_prompt_tokens": 240.0, "added_latency_s": 0.012}),
        ],
        {},
    )
    lines = costs(grid)
    assert "senti@abc 8-shot random: +240 prompt tokens per call, +12 ms" in lines
    assert lines[-1] == (
        "break-even: demo+t1 as is's 14 s of training costs less than senti@abc 8-shot random's +240 prompt "
        "tokens (+12.0 ms) per call after 1,167 calls"
    )


def test_bootstrapping_lists_training_rows_the_model_answered_right(home):
    from core.workbench.service import Workbench

    workbench = Workbench(home)
    version = PromptVersion(
        "Review: {{text}}\nSentiment:", mode="raw", params={"max_new_tokens": 4}, shots=Shots(3, "bootstrapped")
    )
    found = workbench.bootstrap("senti", version, EvalRequest("demo", "eval", grader="labels"), ScriptedBackend())
    assert found.shots.select == "bootstrapped" and len(found.shots.rows) == 3 and found.id != version.id
    train = {it.id: it for it in demo().split("train")}
    (looked,) = workbench.evals.list()
    assert looked.split == "train"  # the run that found them: on training rows, in history
    summary = workbench.evals.load(looked.id)
    assert all(row in train and summary.scores(0)[row].passed for row in found.shots.rows)
    with pytest.raises(TunelabError, match="select bootstrapped needs its rows found first"):
        Demonstrations(version.shots, list(train.values()), "demo")


def test_training_with_a_k_shot_prompt_keeps_the_demonstrations_out_of_the_loss(demo_loaded, home):
    from core.engine.options import ModelOptions
    from core.training.data import examples
    from core.workbench.service import Workbench

    version = PromptVersion(RAW.template, mode="raw", shots=Shots(2, seed=4))
    config = Workbench(home).train_config({}, options=ModelOptions("demo"), dataset="demo", prompt=version)
    assert config.shots == version.shots.to_dict()
    data = demo()
    pool, rows = data.split("train"), data.split("train")[:3]
    shot, plain = (
        examples(demo_loaded, config, rows, pool=pool),
        examples(demo_loaded, replace(config, shots=None), rows),
    )
    tok = demo_loaded.tokenizer
    for with_demos, without, row in zip(shot, plain, rows):
        assert len(with_demos.ids) > len(without.ids)  # the demonstrations are in the prompt...
        learned = lambda ex: [t for t, label in zip(ex.ids, ex.labels) if label != -100]  # noqa: E731
        assert learned(with_demos) == learned(without)  # ...and the loss is on the row's own answer alone
        assert row.vars["text"] not in tok.decode(with_demos.ids).rsplit(row.vars["text"], 1)[0]  # never its own demo
