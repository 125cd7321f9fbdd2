"""Early stopping's rule (patience, min_delta, the metric's direction) and the settings it needs."""

import math

import pytest

from core.errors import TunelabError
from core.training.config import TrainConfig
from core.training.early_stopping import EarlyStop, EarlyStopping


def stops(stopping: EarlyStopping, values: list[float]) -> list[bool]:
    return [stopping.update(v) for v in values]


def test_min_mode_stops_after_patience_evaluations_without_a_lower_value():
    stopping = EarlyStopping(patience=2, mode="min")
    assert stops(stopping, [1.0, 0.8, 0.8, 0.9]) == [False, False, False, True]
    assert stopping.best == 0.8


def test_an_improvement_resets_the_count():
    stopping = EarlyStopping(patience=2, mode="min")
    assert stops(stopping, [1.0, 1.1, 0.9, 1.0, 0.95]) == [False, False, False, False, True]


def test_max_mode_wants_a_higher_value():
    stopping = EarlyStopping(patience=1, mode="max")
    assert stops(stopping, [0.5, 0.6, 0.6]) == [False, False, True]
    assert stopping.best == 0.6


def test_min_delta_an_improvement_must_be_larger_than_it():
    stopping = EarlyStopping(patience=2, min_delta=0.1, mode="min")
    assert stops(stopping, [1.0, 0.95, 0.9]) == [False, False, True]  # 0.1 exactly is not more than 0.1
    assert stopping.best == 1.0
    rising = EarlyStopping(patience=1, min_delta=0.05, mode="max")
    assert stops(rising, [0.5, 0.56, 0.6]) == [False, False, True]


def test_a_non_finite_value_never_improves():
    stopping = EarlyStopping(patience=2, mode="min")
    assert stops(stopping, [math.nan, 1.0, math.inf, math.nan]) == [False, False, False, True]
    assert stopping.best == 1.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        EarlyStopping(patience=1, mode="lowest")
    with pytest.raises(ValueError):
        EarlyStopping(patience=0)


def test_the_run_side_names_the_step_the_reason_and_the_best_checkpoint():
    early = EarlyStop(TrainConfig(early_stop=2, eval_every=5))
    rows = [{"step": 5, "eval_loss": 1.0}, {"step": 10, "eval_loss": 0.5}, {"step": 12, "loss": 0.4}]
    rows += [{"step": 15, "eval_loss": 0.6}, {"step": 20, "eval_loss": 0.5}]
    assert [early.see(r) for r in rows] == [False, False, False, False, True]
    assert early.reason() == (
        "stopped early at step 20: eval_loss has not improved for 2 evaluations; best checkpoint step-000010 "
        "(eval_loss 0.5), the run's adapter"
    )
    scored = EarlyStop(TrainConfig(early_stop=1, early_stop_metric="pass_rate", eval_items=8, min_delta=0.01))
    assert not scored.see({"step": 5, "pass_rate": 0.5}) and scored.reason() is None
    assert scored.see({"step": 10, "pass_rate": 0.505})
    assert "pass_rate has not improved by more than 0.01 for 1 evaluation;" in str(scored.reason())


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"early_stop": 3, "eval_every": None}, "early stop needs evaluations: set eval every and an eval split"),
        ({"early_stop": 3, "eval_split": None}, "early stop needs evaluations"),
        ({"early_stop": 3, "early_stop_metric": "pass_rate"}, "early stop metric pass_rate needs eval items"),
        ({"early_stop": 0}, "early_stop must be between 1 and 10000"),
        ({"early_stop": 3, "early_stop_metric": "accuracy"}, "early_stop_metric must be one of eval_loss, pass_rate"),
        ({"min_delta": -0.1}, "min_delta must be at least 0"),
    ],
)
def test_a_config_that_cannot_stop_early_is_refused_in_one_line(settings, message):
    with pytest.raises(TunelabError, match=message):
        TrainConfig(**settings)


def test_only_the_best_so_far_is_kept_and_a_bettered_one_goes_unless_kept_for_another_reason():
    from core.training.evaluation import Evaluation

    evaluation = Evaluation(TrainConfig(early_stop=3, eval_every=5, save_every=20), [], None, 0, "cpu")
    kept, dropped = [], []
    for step, loss in ((5, 1.0), (10, 0.8), (15, 0.9), (20, 0.7), (25, 0.6), (30, 0.5)):
        row = {"step": step, "eval_loss": loss}
        evaluation.early.see(row)
        if evaluation.keeps(row):
            kept.append(step)
            dropped += evaluation.superseded()
    assert kept == [5, 10, 20, 25, 30]  # 15 was no better
    assert dropped == [5, 10, 25]  # 20 stays: a save_every step


def test_the_status_pass_rate_is_the_restored_best_steps_not_the_plateaus():
    from core.training.evaluation import Evaluation

    evaluation = Evaluation(TrainConfig(early_stop=2, early_stop_metric="pass_rate", eval_items=8), [], None, 0, "cpu")
    scores = ((5, 0.5), (10, 0.75), (15, 0.7), (20, 0.6))
    evaluation.scored = [{"step": s, "pass_rate": r, "eval_loss": None} for s, r in scores]
    assert evaluation.best(at=10)["pass_rate"] == 0.75 and evaluation.best()["pass_rate"] == 0.6
    assert evaluation.best(at=10)["best_checkpoint"] == "step-000010"
