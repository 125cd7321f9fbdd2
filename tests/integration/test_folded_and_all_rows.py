"""Real-artefact round 3: `train --split all` trains on every row (no eval loss from its own rows, said
once), and gen, eval and train each say once, on stderr, that a system prompt was folded into the first
user turn of a model whose chat template takes no system turn."""

import json

import pytest

from core.data.datasets import load_dataset
from core.engine.prompt import FOLD_NOTE
from core.errors import TunelabError
from core.training.config import TrainConfig
from core.training.splits import eval_rows, train_rows
from tests.conftest import here, tunelab
from tests.tiny_models import FAMILIES

FOLDING = next(f.name for f in FAMILIES if f.refuses_system)


def rows_file(tmp_path, n=12, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "text": f"row {i}", "label": "yes" if i % 2 else "no"}) + "\n" for i in range(n)
        )
    )
    return path


def test_split_all_trains_on_every_row_and_the_eval_loss_comes_from_another_file_or_is_off(tmp_path):
    data = load_dataset(str(rows_file(tmp_path)), expected="label")
    assert data.split("all") == data.items and len(data.split("train")) < len(data.items)
    everything = TrainConfig(dataset=str(rows_file(tmp_path)), expected="label", split="all")
    assert len(train_rows(everything, data)) == 12
    rows, note = eval_rows(everything, data)
    assert rows == [] and "split 'all' trains on every row" in note
    other = rows_file(tmp_path, n=5, name="other.jsonl")
    rows, note = eval_rows(TrainConfig(split="all", expected="label", eval_dataset=str(other)), data)
    assert [it.id for it in rows] == [f"r{i}" for i in range(5)] and note == ""  # every row of a file with no splits
    none_held = load_dataset(str(rows_file(tmp_path)), expected="label", holdout=0.0)
    rows, note = eval_rows(TrainConfig(expected="label", eval_fraction=0.0), none_held)
    assert rows == [] and "eval_fraction 0" in note
    assert eval_rows(TrainConfig(eval_split=None), data) == ([], "")  # asked for none: nothing to say
    with pytest.raises(TunelabError, match="has no split 'test'"):
        eval_rows(TrainConfig(eval_split="test"), data)


@pytest.mark.slow
def test_gen_eval_and_train_each_say_once_that_the_system_prompt_was_folded(home, tmp_path, tiny_models, capsys):
    model = str(tiny_models[FOLDING])
    said = f"note: model {model}: {FOLD_NOTE}"
    out = here(capsys, "gen", "--model", model, "--system", "Be brief.", "--chat", "hi", "--max-new-tokens", "2")
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines().count(said) == 1
    plain = here(capsys, "gen", "--model", model, "--chat", "hi", "--max-new-tokens", "2")
    assert plain.returncode == 0 and "note:" not in plain.stderr  # no system prompt: nothing folded
    prompt = tmp_path / "p.toml"
    prompt.write_text(
        'mode = "chat"\nsystem = "Answer yes or no."\ntemplate = "{{text}}"\n[params]\nmax_new_tokens = 2\n'
    )
    data = rows_file(tmp_path)
    out = here(
        capsys, "eval", "--model", model, "--prompt", str(prompt), "--dataset", str(data), "--expected", "label",
        "--grader", "exact", "--limit", "4",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines().count(said) == 1
    out = tunelab(
        "train", "--model", model, "--prompt", str(prompt), "--dataset", str(data), "--expected", "label",
        "--split", "all", "--max-steps", "2", "--batch-size", "4", "--save-every", "100", "--eval-every", "1",
        home=home, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines.count(said) == 1
    assert sum("no eval loss: split 'all' trains on every row" in line for line in lines) == 1
    run_id = next(line.split()[-1] for line in lines if line.startswith("started training run"))
    config = json.loads((home / "runs" / run_id / "run_config.json").read_text())
    assert config["resolved"]["train_examples"] == 12 and config["resolved"]["eval_examples"] == 0


@pytest.mark.slow
def test_a_row_the_template_cannot_render_is_named_and_can_be_skipped(tmp_path, demo_loaded, capsys):
    """A tool-call row on a model whose chat template has no tool calls: `eval` names the file and row in
    one line; `--skip-unrenderable` evaluates the rest and counts the row; a run's examples name it too (the
    child finds it, with the tokenizer, and fails the run with that line)."""
    rows = [
        {"messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi"}]}
        for i in range(3)
    ]
    rows.insert(1, {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]})  # fmt: skip
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = here(capsys, "eval", "--dataset", str(data), "--no-prompt", "--grader", "exact")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("tunelab: error: tools.jsonl:2: model 'demo': its chat template has no tool calls")
    assert "--skip-unrenderable" in out.stderr
    out = here(
        capsys, "eval", "--dataset", str(data), "--no-prompt", "--grader", "exact", "--skip-unrenderable", "--json"
    )
    assert out.returncode == 0, out.stderr
    variant = json.loads(out.stdout)["variants"][0]
    assert variant["unrenderable"] == 1 and variant["trials"] == 3
    from core.training.data import examples

    with pytest.raises(TunelabError, match="^tools.jsonl:2: model 'demo': its chat template has no tool calls"):
        examples(demo_loaded, TrainConfig(split="all"), load_dataset(str(data)).split("all"))
