"""The shipped demo model and task, and the script that builds them."""

import json

import pytest

from core import demo
from core.demo.build import BuildConfig, build


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_shipped_model_is_small_and_safetensors_only():
    files = {p.name: p.stat().st_size for p in demo.MODEL_DIR.iterdir()}
    assert "model.safetensors" in files and not any(n.endswith(".bin") for n in files)
    assert sum(files.values()) <= 10 * 1024 * 1024


def test_shipped_task_is_balanced_split_and_disjoint():
    train, evals = read_jsonl(demo.TASK_DIR / "train.jsonl"), read_jsonl(demo.TASK_DIR / "eval.jsonl")
    assert len(train) + len(evals) >= 300 and len(evals) >= 60
    assert {tuple(sorted(r)) for r in train + evals} == {("id", "label", "text")}
    assert {r["label"] for r in train} == {"positive", "negative"}
    assert abs(sum(r["label"] == "positive" for r in train) - len(train) / 2) < len(train) * 0.1
    assert not {r["id"] for r in train} & {r["id"] for r in evals}
    assert not {r["text"] for r in train} & {r["text"] for r in evals}  # no eval leakage into training


@pytest.mark.slow
def test_build_script_makes_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = BuildConfig(steps=3, documents=400, batch_size=4, task_items=40)
    lines: list[str] = []
    loss = build(tmp_path / "model", tmp_path / "task", cfg, log=lines.append)
    assert loss == loss and any(line.startswith("step 3/3") for line in lines)
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert tok.chat_template and model.config.model_type == "llama"
    assert len(read_jsonl(tmp_path / "task" / "train.jsonl")) == 32
    assert len(read_jsonl(tmp_path / "task" / "eval.jsonl")) == 8


def test_pre_training_never_contains_a_task_item():
    from core.demo.build import without_task

    items = [{"id": "1", "text": "The lamp is great.", "label": "positive"}]
    docs = ["The lamp is great. Overall, this review is positive.", "The lamp is great", "A story."]
    assert without_task(docs, items) == ["The lamp is great", "A story."]
