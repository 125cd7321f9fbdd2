"""The shape of each JSON file tunelab reads back from disk, as pydantic models: a reader checks what it
read against its file's model and names a file of another shape by its path and first bad field, instead
of a hand check per reader. Types are strict (a "3" is not a step); fields a newer version adds are kept.
Imported where files are read (off the UI loop), never at start: pydantic costs a few hundred ms to load."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class Shape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Losses(Shape):
    """The losses a run writes (status and metrics alike); a diverged run's NaN reads as None: a gap in the
    chart, never a crash in a format string."""

    loss: float | None = None
    eval_loss: float | None = None

    @field_validator("loss", "eval_loss")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None


class RunStatus(Losses):
    """A run folder's `status.json` (written by the trainer, or the launcher before it starts)."""

    state: str
    step: int = 0
    total_steps: int | None = None
    error: str | None = None
    pid: int | None = None
    pgid: int | None = None
    pid_start: str | None = None


class RunConfig(Shape):
    """A run folder's `run_config.json`: the settings (checked again by TrainConfig) and what was resolved."""

    id: str
    created_at: str
    config: dict[str, Any]
    resolved: dict[str, Any] | None = None


class MetricRow(Losses):
    """One line of a run's `metrics.jsonl`; `pass_rate` at the steps a run with eval_items scored."""

    step: int
    pass_rate: float | None = None

    @field_validator("pass_rate")
    @classmethod
    def _share(cls, value: float | None) -> float | None:
        return value if value is None or 0.0 <= value <= 1.0 else None


class EvalVariant(Shape):
    label: str
    pass_rate: float


class EvalHeadline(Shape):
    """An eval run's row in `meta.json` (the list); its `summary.json` adds the per-item results."""

    id: str
    created_at: str
    dataset: str
    status: str
    variants: list[EvalVariant]


class EvalSummary(EvalHeadline):
    items: dict[str, Any]


class ResultRow(Shape):
    """One graded line of an eval's `results.jsonl`."""

    variant: int
    item: str


class PlanVariant(Shape):
    name: str
    version: dict[str, Any] | None
    model: str | None
    adapter: str | None


class EvalPlan(Shape):
    """An eval folder's `plan.json`: enough to summarize its rows if its process dies."""

    request: dict[str, Any]
    dataset: str
    dataset_sha256: str
    n_items: int
    variants: list[PlanVariant]


def problem(shape: type[Shape], data: Any) -> str | None:
    """None when `data` has the shape; else its first mismatch, as `field 'a.b': message`."""
    try:
        shape.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"field '{where}': {first['msg'][:1].lower()}{first['msg'][1:]}" if where else first["msg"]
    return None


def checked(shape: type[Shape], data: Any) -> dict[str, Any] | None:
    """`data` as its model reads it (NaN losses as None, extra fields kept), or None when of another shape."""
    try:
        return shape.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError:
        return None
