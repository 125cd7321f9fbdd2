"""The data-budget curve's pure parts: nested seeded subsets, the prompt arm's narrowed demonstration pool, the
LoRA arm's row subset, and the curve's statistics by seeded Monte Carlo with scripted arms whose crossover is
known (no model: each item's outcome is drawn)."""

import math
import random
import statistics
from dataclasses import replace

import pytest

from core.data.datasets import load_dataset
from core.data.promptfiles import prompt_toml
from core.data.prompts import PromptVersion, read_prompt_file
from core.data.shots import Demonstrations, Shots
from core.errors import TunelabError
from core.evals.budget_chart import chart_cells, chart_text
from core.evals.budget_curve import (
    Arm,
    Curve,
    best_candidate,
    judge_curve,
    nested_subsets,
    parse_sizes,
    point,
    resolve_sizes,
    shot_choices,
)
from core.evals.stats import holm
from core.training.config import TrainConfig
from core.training.splits import train_rows

RAW = PromptVersion("{{text}} Overall, this review is", mode="raw")
SIZES = (16, 64, 256, 480)


def test_subsets_are_nested_seeded_and_independent_of_the_rows_order():
    ids = [f"r{i:03d}" for i in range(480)]
    subsets = nested_subsets(ids, [16, 64, 256, 480], seed=0)
    assert [len(s) for s in subsets] == [16, 64, 256, 480]
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) < set(large) and large[: len(small)] == small  # the 16 are the first 16 of the 64
    assert nested_subsets(list(reversed(ids)), [16, 64], seed=0) == subsets[:2]  # the file's order plays no part
    assert nested_subsets(ids, [16], seed=0) == subsets[:1]  # the same rows whatever other sizes are asked
    other = nested_subsets(ids, [16], seed=1)[0]
    assert set(other) != set(subsets[0]) and len(other) == 16
    assert subsets[0] != tuple(ids[:16])  # drawn, not the file's first rows


def test_sizes_are_parsed_and_one_above_the_training_rows_is_refused_in_one_line():
    assert parse_sizes("16, 64,all") == [16, 64, None]
    assert resolve_sizes([64, None, 16, 64], 480, "demo") == [16, 64, 480]
    for bad in ("16,,64", "0", "sixteen", "-4"):
        with pytest.raises(TunelabError, match="budget takes row counts like 16,64,256,all"):
            parse_sizes(bad)
    with pytest.raises(TunelabError, match="budget 1000 is above the 480 training rows of demo"):
        resolve_sizes([16, 1000], 480, "demo")
    assert shot_choices(2) == [(1, "random"), (1, "similar"), (2, "random"), (2, "similar")]
    assert len(shot_choices(16)) == 8  # with the prompt as it is: 9 candidates a size
    assert best_candidate([0.5, 0.7, 0.7, 0.6]) == 1  # a tie keeps the earlier one (fewer demonstrations)


def test_a_pool_narrows_the_demonstrations_to_its_rows_and_is_part_of_the_id():
    data = load_dataset("demo")
    train, item = data.split("train"), data.split("eval")[0]
    pool = tuple(it.id for it in train[100:116])
    for select in ("random", "similar"):
        chosen = Demonstrations(Shots(4, select, pool=pool), train, "demo").for_item(item)
        assert len(chosen) == 4 and {d.id for d in chosen} <= set(pool)
    unpooled = PromptVersion(RAW.template, mode="raw", shots=Shots(4))
    pooled = replace(unpooled, shots=Shots(4, pool=pool))
    assert "pool" not in unpooled.shots.to_dict()  # a version without a pool keeps the id it had
    assert pooled.id != unpooled.id and pooled.shots_label == "4-shot random from 16 rows"
    assert Shots.from_dict(pooled.shots.to_dict()) == pooled.shots
    with pytest.raises(TunelabError, match="demonstration pool row .* is not a training row of demo"):
        Demonstrations(Shots(2, pool=(data.split("eval")[1].id,)), train, "demo")


def test_a_pooled_prompt_file_round_trips(tmp_path):
    version = PromptVersion(RAW.template, mode="raw", shots=Shots(2, "similar", pool=("s0001", "s0002")))
    path = tmp_path / "p.toml"
    path.write_text(prompt_toml("p", version))
    assert read_prompt_file(path)[1] == version


def test_a_run_trains_on_exactly_the_rows_it_lists():
    data = load_dataset("demo")
    wanted = tuple(it.id for it in data.split("train")[5:13])
    config = TrainConfig(rows=wanted)
    assert [it.id for it in train_rows(config, data)] == list(wanted)
    assert TrainConfig.from_dict(config.to_dict()) == config and not config.differences(
        TrainConfig.from_dict(config.to_dict())
    )
    assert len(train_rows(TrainConfig(), data)) == 480  # no list: every training row
    assert "rows" not in TrainConfig().to_dict()  # and a stored config as it was before subsets
    with pytest.raises(TunelabError, match="training row .* is not in split 'train' of demo"):
        train_rows(TrainConfig(rows=(data.split("eval")[0].id,)), data)


def test_holm_steps_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.3, 0.9]) == [0.6, 0.9]


# -- the curve's statistics, by simulation ---------------------------------------------------------------------
def _items(rng: random.Random, rate: float, n: int) -> dict[str, float]:
    return {f"i{j}": float(rng.random() < rate) for j in range(n)}


def simulate(
    rng: random.Random, prompt_rate: float, lora_rates: tuple[float, ...], n: int, candidates: int = 8
) -> Curve:
    """A scripted curve: at each size `candidates` prompts of the same true rate are graded on the same `n`
    items and the best kept (as the workbench keeps it), against a LoRA of the size's true rate."""
    points = []
    for size, lora_rate in zip(SIZES, lora_rates):
        tried = [_items(rng, prompt_rate, n) for _ in range(candidates)]
        best = tried[best_candidate([statistics.fmean(c.values()) for c in tried])]
        lora = _items(rng, lora_rate, n)
        points.append(
            point(size, size == SIZES[-1], Arm.of("best", best), Arm.of("LoRA", lora), Arm.of("both", lora), candidates)
        )
    return judge_curve(points)


def test_the_crossover_is_found_where_the_lora_overtakes_prompting():
    rng = random.Random(7)
    trials = 200
    curves = [simulate(rng, 0.7, (0.5, 0.65, 0.85, 0.9), 400) for _ in range(trials)]
    found = sum(c.crossover == 2 for c in curves)
    assert found >= 0.8 * trials
    right = next(c for c in curves if c.crossover == 2)
    assert right.sentence.startswith(
        "The LoRA overtakes prompting between 64 and 256 labelled rows; at 256 the difference is real"
    )
    assert "adjusted for keeping the best of 8 prompt versions and for 4 sizes compared" in right.sentence


def test_equal_arms_are_called_real_at_most_five_percent_of_the_time():
    rng = random.Random(11)
    trials = 300
    curves = [simulate(rng, 0.7, (0.7,) * 4, 300) for _ in range(trials)]
    said = sum(bool(c.real) for c in curves)
    assert said / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)  # 5% and three Monte Carlo errors
    quiet = next(c for c in curves if not c.real)
    assert quiet.sentence.startswith("The LoRA never overtakes prompting")


def test_a_curve_kept_as_a_file_reads_back_and_a_damaged_one_is_one_line():
    curve = simulate(random.Random(3), 0.7, (0.5, 0.65, 0.85, 0.9), 120)
    again = Curve.from_dict(curve.to_dict())
    assert again.to_dict() == curve.to_dict() and again.sentence == curve.sentence
    with pytest.raises(TunelabError, match="not a data-budget curve"):
        Curve.from_dict({"points": [{"size": 16}]})


def test_the_chart_puts_each_arm_at_its_rate_on_a_log_axis():
    def arms(prompt, lora):
        return (
            Arm("p", prompt, (prompt - 0.1, prompt + 0.1)),
            Arm("l", lora, (lora - 0.1, lora + 0.1)),
            Arm("b", lora, (lora, lora)),
        )

    points = [
        point(16, False, *arms(0.7, 0.0), 9),
        point(64, False, *arms(0.7, 0.5), 9),
        point(1024, True, *arms(0.7, 1.0), 9),
    ]
    cells = chart_cells(points, width=80, height=11)
    plot = cells[:11]
    where = {(r, c): what for r, line in enumerate(plot) for c, (char, what) in enumerate(line) if char in "PLB"}
    lora = sorted((c, r) for (r, c), what in where.items() if what == "lora")
    assert [r for _, r in lora] == [10, 5, 0]  # 0%, 50%, 100% on 11 rows
    gaps = [b[0] - a[0] for a, b in zip(lora, lora[1:])]
    assert gaps[1] == pytest.approx(2 * gaps[0], abs=1)  # 16 -> 64 is half as far as 64 -> 1024 on a log axis
    assert all(what == "prompt" for (r, _), what in where.items() if r == 3)  # 70% on the row for 70%
    text = chart_text(points, width=80, height=11)
    assert "1024 (all)" in text and "labelled rows (log scale)" in text


def test_each_sizes_lora_gets_the_steps_of_all_rows_evaluated_once_an_epoch_and_stopped_early_on_dev():
    from core.training.config import TrainConfig
    from core.workbench.budget import PATIENCE, early_stopped

    at_480 = early_stopped(TrainConfig(batch_size=16, grad_accum=1, epochs=6), 480, 480)
    assert (at_480.epochs, at_480.eval_every, at_480.early_stop, at_480.early_stop_metric) == (
        6, 30, PATIENCE, "eval_loss"
    )  # fmt: skip
    at_16 = early_stopped(TrainConfig(batch_size=16, epochs=6), 16, 480)
    assert (at_16.epochs, at_16.eval_every) == (180, 1)  # 180 steps at most, as all 480 rows get
    at_17 = early_stopped(TrainConfig(batch_size=8, grad_accum=2, epochs=6), 17, 480)
    assert (at_17.eval_every, at_17.epochs) == (1, 180)  # 3 batches of 8 make 1 step of 2 (as the loop counts)
    at_20 = early_stopped(TrainConfig(batch_size=4, grad_accum=4, epochs=6), 20, 100)  # the reviewer's case
    assert (at_20.eval_every, at_20.epochs) == (1, 36)  # 36 steps, as all 100 rows get: 25 batches, 6 steps
    mine = TrainConfig(early_stop=5, eval_every=7)
    assert early_stopped(mine, 16, 480) is mine  # the user's own early stopping stays
    for kept in (TrainConfig(eval_split=None), TrainConfig(max_steps=40)):
        assert early_stopped(kept, 16, 480) is kept
