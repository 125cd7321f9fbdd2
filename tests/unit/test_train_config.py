import pytest

from core.errors import TunelabError
from core.training.config import TrainConfig
from core.training.loop import lr_factor


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lora_r", 0, "lora_r must be at least 1"),
        ("lora_r", "8", "lora_r must be a whole number, got '8'"),
        ("lora_r", None, "lora_r needs a value"),
        ("lora_dropout", 1.0, "lora_dropout must be at least 0 and below 1"),
        ("learning_rate", 0, "learning_rate must be positive and at most 1"),
        ("quantize", "2bit", "quantize must be one of 4bit, 8bit"),
        ("schedule", "wavy", "schedule must be one of cosine"),
        ("batch_size", 0, "batch_size"),
        ("max_steps", 0, "max_steps"),
        ("epochs", 0, "epochs"),
        ("template", "{{ x.y }}", "template: attribute"),
        ("mode", "json", "mode must be"),
    ],
)
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises(TunelabError, match=message):
        TrainConfig(**{field: value})


def test_round_trip_and_differences():
    config = TrainConfig(target_modules=("q_proj", "v_proj"), max_steps=5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.differences(TrainConfig(target_modules=("q_proj", "v_proj"), max_steps=5, lora_r=8)) == [
        "lora_r: 16 -> 8"
    ]
    with pytest.raises(TunelabError, match="unknown training setting 'rank'"):
        TrainConfig.from_dict({"rank": 4})


def test_schedules():
    cosine = lr_factor("cosine", 2, 10)
    assert cosine(0) == 0.5 and cosine(1) == 1.0 and cosine(2) == 1.0 and cosine(10) == 0.0
    assert lr_factor("linear", 0, 10)(5) == 0.5 and lr_factor("constant", 0, 10)(9) == 1.0


def test_out_of_memory_marks_the_run_failed_with_advice(home, monkeypatch):
    import torch

    from core.training import __main__ as child
    from core.training import loop
    from core.training.runs import Runs

    runs = Runs(home)
    run_id = runs.create(TrainConfig())

    def out_of_memory(run_dir, resume=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "train", out_of_memory)
    assert child.main([str(runs.path(run_id))]) == 1
    status = runs.status(run_id)
    assert status.state == "failed"
    assert status.error.startswith("OutOfMemoryError: out of memory: lower batch_size or max_seq_len")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": float("inf")}, "epochs must be positive and at most 10000"),
        ({"seed": 10**30}, "seed must be between 0 and 4294967295"),
        ({"eval_fraction": 1.5}, "eval_fraction must be at least 0 and below 1"),
    ],
)
def test_settings_that_would_fail_in_the_child_are_refused_up_front(values, message):
    with pytest.raises(TunelabError, match=message):
        TrainConfig(**values)


def test_an_option_reads_what_was_typed_as_its_field():
    from core.training.config import TRAIN_OPTIONS

    options = {o.name: o for o in TRAIN_OPTIONS}
    assert options["max_steps"].parse(" ") is None and options["max_steps"].parse(" 12 ") == 12
    assert options["eval_split"].parse("none") is None and options["split"].parse("none") == "none"
    assert options["target_modules"].parse("all-linear") == "all-linear"
    assert options["target_modules"].parse("q_proj, v_proj,") == ("q_proj", "v_proj")
    assert options["modules_to_save"].parse("") == () and options["modules_to_save"].shown(("a", "b")) == "a,b"
    with pytest.raises(TunelabError, match="^split needs a value$"):
        options["split"].parse("")
    with pytest.raises(TunelabError, match="^epochs must be a number, got 'x'$"):
        options["epochs"].parse("x")
