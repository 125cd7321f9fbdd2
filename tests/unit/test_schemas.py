"""Each file read back from disk has a pydantic shape: a mismatch names its first bad field."""

import json
import math

import pytest

from core.storage.schemas import EvalHeadline, EvalPlan, GradedRow, MetricRow, RunStatus, checked, parsed, problem

HEADLINE = {"id": "e1", "created_at": "2026-01-01", "dataset": "demo", "status": "done"}


@pytest.mark.parametrize(
    ("shape", "data", "expected"),
    [
        (RunStatus, [1, 2], "Input should be a valid dictionary"),
        (RunStatus, {"step": 3}, "field 'state': field required"),
        (RunStatus, {"state": "running", "step": "3"}, "field 'step': input should be a valid integer"),
        (RunStatus, {"state": "running", "error": 5}, "field 'error': input should be a valid string"),
        (MetricRow, {"loss": 1.0}, "field 'step': field required"),
        (EvalHeadline, {**HEADLINE, "variants": [{"label": "a"}]}, "field 'variants.0.pass_rate': field required"),
        (EvalPlan, {"request": {}}, "field 'dataset': field required"),
        (GradedRow, {"variant": 0, "item": "a", "output": "x"}, "field 'expected': field required"),
    ],
)
def test_a_file_of_another_shape_is_named_by_its_first_bad_field(shape, data, expected):
    assert problem(shape, data).startswith(expected)
    assert checked(shape, data) is None


def test_a_diverged_loss_reads_as_a_gap_and_unknown_fields_are_kept():
    row = checked(MetricRow, {"step": 4, "loss": math.nan, "lr": 0.001})
    assert row == {"step": 4, "loss": None, "lr": 0.001}  # eval_loss stays absent: it was never logged
    assert problem(EvalHeadline, {**HEADLINE, "variants": [{"label": "a", "pass_rate": 1}]}) is None


def test_a_run_status_hint_of_another_type_reads_as_unset_and_the_run_still_lists():
    """Fields the trainer adds along the way are hints: a hand-edited one reads as unset, as each reader's own
    check read it, and never makes the run `unknown` (the first fields still do)."""
    status, why = parsed(RunStatus, {"state": "done", "adapter": 5, "best_pass_rate": "x", "checkpoints": "no"})
    assert why is None and status is not None
    assert (status.adapter, status.best_pass_rate, status.checkpoints) == (None, None, [])


def test_runs_show_prints_a_status_in_the_order_it_always_had():
    """The first fields, the file's others in its order, then what `Runs.status` read from the folder; a NaN
    loss and a stop not asked for are left out."""
    raw = {"updated_at": "t", "state": "done", "adapter": "adapter", "zz": 1, "step": 4, "loss": math.nan}
    status = RunStatus.model_validate(raw)
    status.id, status.checkpoints, status.stop_requested_at = "t1", ["step-000004"], None
    assert list(status.to_dict()) == ["state", "step", "updated_at", "adapter", "zz", "id", "checkpoints"]


def test_a_graded_row_writes_the_line_it_was_made_with():
    line = {
        "variant": 1, "item": "a", "repeat": 0, "output": "x", "expected": None, "passed": True, "score": 1.0,
        "latency_s": None, "prompt_tokens": 3, "completion_tokens": 1, "truncated": False, "cached": True,
        "judge": "PASS",
    }  # fmt: skip
    assert json.dumps(GradedRow(**line).to_dict()) == json.dumps(line)
    older = {k: v for k, v in line.items() if k not in ("prompt_tokens", "truncated", "judge")}
    graded = GradedRow.model_validate(older)  # a line from before prompt tokens were kept
    assert graded.to_dict() == older and graded.prompt_tokens is None and graded.truncated is False
