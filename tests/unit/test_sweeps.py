"""A sweep's grid: keys are the declared training options, values read with each option's type and bounds, one
line naming what is wrong; and which finished run is best on dev."""

import pytest

from core.errors import TunelabError
from core.storage.schemas import RunStatus
from core.training.config import TrainConfig
from core.training.sweeps import best_run, parse_grid, sweep_configs


def test_values_are_read_with_each_options_type_and_the_last_key_varies_fastest():
    grid = parse_grid("learning_rate=1e-4,3e-4 lora_r=8,16  packing=true,off schedule=linear max_steps=3,5")
    assert (
        grid.size == 16 and str(grid) == "learning_rate (2) x lora_r (2) x packing (2) x schedule (1) x max_steps (2)"
    )
    points = grid.points()
    assert points[0] == {"learning_rate": 1e-4, "lora_r": 8, "packing": True, "schedule": "linear", "max_steps": 3}
    assert points[1]["max_steps"] == 5 and [p["lora_r"] for p in points[:8:2]] == [8, 8, 16, 16]
    assert type(points[0]["lora_r"]) is int and type(points[0]["learning_rate"]) is float
    assert parse_grid("eval_split=none,eval").points() == [{"eval_split": None}, {"eval_split": "eval"}]


@pytest.mark.parametrize(
    "text,message",
    [
        ("rank=8,16", "sweep: 'rank' cannot be swept (not a training option"),
        ("model=demo", "sweep: 'model' cannot be swept (not a training option"),
        ("target_modules=q_proj,v_proj", "sweep: 'target_modules' cannot be swept (a list of names"),
        ("nproc=1,2", "sweep: 'nproc' cannot be swept (where the runs train, set for the whole sweep"),
        ("lora_r=8 lora_r=16", "sweep: 'lora_r' is given twice"),
        ("lora_r=8,x", "lora_r must be a whole number, got 'x'"),
        ("lora_r=8,0", "sweep: lora_r must be at least 1"),
        ("learning_rate=2", "sweep: learning_rate must be positive and at most 1"),
        ("schedule=cosine,wavy", "sweep: schedule must be one of cosine, linear, constant"),
        ("packing=maybe", "sweep: packing takes true or false, got 'maybe'"),
        ("lora_r", "sweep: 'lora_r' is not KEY=VALUE,VALUE"),
        ("lora_r=,", "sweep: 'lora_r=,' is not KEY=VALUE,VALUE"),
        ("  ", "sweep needs KEY=VALUE,VALUE"),
        pytest.param(
            "lora_r=" + ",".join(["8"] * 5000), "sweep: 'lora_r' has 5000 values, more than 4096", id="5000-values"
        ),
        pytest.param(
            "lora_r=" + ",".join(map(str, range(1, 101))) + " lora_alpha=" + ",".join(map(str, range(1, 101))),
            "sweep makes 10000 runs, more than 4096 ",
            id="10000-runs",
        ),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(text, message):
    with pytest.raises(TunelabError, match="^" + message.replace("(", r"\(")):
        parse_grid(text)


def test_each_runs_settings_are_checked_whole_before_anything_starts():
    base = TrainConfig(max_steps=4)
    configs = sweep_configs(base, parse_grid("lora_r=8,16"))
    assert [c.lora_r for c in configs] == [8, 16] and all(c.max_steps == 4 for c in configs)
    with pytest.raises(TunelabError, match="^sweep early_stop=2: early stop needs evaluations"):
        sweep_configs(TrainConfig(eval_split=None), parse_grid("early_stop=2"))
    with pytest.raises(TunelabError, match="nnodes above 1 is refused"):
        sweep_configs(TrainConfig(nnodes=2, rdzv_endpoint="h:1"), parse_grid("lora_r=8"))
    # --nproc says how many runs train at once: each run is one process, never DDP
    assert [c.nproc for c in sweep_configs(TrainConfig(nproc=4), parse_grid("lora_r=8,16"))] == [1, 1]


def status(state="done", **fields):
    return RunStatus(state=state, **fields)


def test_the_best_run_is_the_highest_pass_rate_when_scored_else_the_lowest_eval_loss():
    losses = [("a", status(eval_loss=0.5)), ("b", status(eval_loss=0.3)), ("c", status(eval_loss=0.3))]
    assert best_run(losses) == ("b", "eval_loss", 0.3)  # a tie: the earlier run
    failed = [("d", status("failed", eval_loss=0.1)), *losses]
    assert best_run(failed)[0] == "b"  # only finished runs
    scored = [("a", status(eval_loss=0.2, pass_rate=0.5)), ("b", status(eval_loss=0.9, pass_rate=0.75))]
    assert best_run(scored) == ("b", "pass_rate", 0.75)
    assert best_run([("a", status()), ("b", status("diverged"))]) is None
