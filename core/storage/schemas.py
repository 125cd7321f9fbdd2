"""The shape of each JSON file tunelab reads back from disk, as pydantic models: a reader checks what it
read against its file's model and names a file of another shape by its path and first bad field, instead
of a hand check per reader. Types are strict (a "3" is not a step); fields a newer version adds are kept.
An eval's summary (`EvalSummary`), a graded row (`GradedRow`) and a run's status (`RunStatus`) are such
models from where they are made to every screen, read by their fields.
Imported by the eval runner and where files are read (off the UI loop), never on the way to the first frame
(a test checks): pydantic costs a few hundred ms to load; the TUI names these types for type checking only."""

from __future__ import annotations

import math
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)


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


STATUS_FIRST = ("loss", "eval_loss", "state", "step", "total_steps", "error", "pid", "pgid", "pid_start")
STATUS_READ = ("problem", "id", "stop_requested_at", "checkpoints")


class RunStatus(Losses):
    """A run folder's `status.json` (written by the trainer, or the launcher before it starts) and what
    `Runs.status` adds as it reads the folder, read by its fields from the folder to every screen. The
    fields first checked (`STATUS_FIRST`) are strict: a file that breaks one is named and shown as
    `unknown`. Those added since are hints: one of another type (a hand-edited file) reads as unset, as
    each reader's own check read it. Fields it does not name (`updated_at`, `epoch`, `eta_s`) are kept."""

    state: str
    step: int = 0
    total_steps: int | None = None
    error: str | None = None
    pid: int | None = None
    pgid: int | None = None
    pid_start: str | None = None
    # the trainer's, as it goes (the checkpoints it saved and scored) and when it is done
    resumed: bool | None = None  # the launcher's: joining nodes of a multi-node run load its checkpoint
    last_checkpoint: str | None = None
    pass_rate: float | None = None
    best_checkpoint: str | None = None
    best_pass_rate: float | None = None
    scored_checkpoints: int | None = None
    adapter: str | None = None  # the adapter's folder in the run's, once done
    trainable_params: int | None = None
    device: str | None = None
    train_s: float | None = None
    early_stop: str | None = None  # why and where the dev metric's plateau ended the run, and its best checkpoint
    # `Runs.status`'s, never in the file: the run's id, its checkpoints' names, when a stop was asked for
    # (the watchdog kills a run that ignores it) and why a status it could not read shows as `unknown`
    id: str = ""
    checkpoints: list[str] = Field(default_factory=list)
    stop_requested_at: float | None = None
    problem: str | None = None
    _order: list[str] = PrivateAttr(default_factory=list)  # the keys as the file had them

    @field_validator(
        "resumed", "last_checkpoint", "pass_rate", "best_checkpoint", "best_pass_rate", "scored_checkpoints",
        "adapter", "trainable_params", "device", "train_s", "early_stop", *STATUS_READ, mode="wrap",
    )  # fmt: skip
    @classmethod
    def _hint(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            return handler(value)
        except ValidationError:
            return cls.model_fields[str(info.field_name)].get_default(call_default_factory=True)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: ModelWrapValidatorHandler[RunStatus]) -> RunStatus:
        status = handler(data)
        status._order = list(data) if isinstance(data, dict) else []
        return status

    def to_dict(self) -> dict[str, Any]:
        """As `runs show` prints it: the first fields, the file's others in its order, then what was read
        from the folder; a loss that is no number (a diverged run's NaN) and a stop not asked for left out."""
        data = self.model_dump(exclude_unset=True)
        gaps = [k for k in ("loss", "eval_loss", "stop_requested_at") if data.get(k, 0) is None]
        keys = dict.fromkeys([*STATUS_FIRST, *self._order, *STATUS_READ, *data])
        return {k: data[k] for k in keys if k in data and k not in gaps}


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


class JudgeCost(Shape):
    """What an eval's judge cost, apart from the graded calls; `errors` are answers it could not parse."""

    model: str | None = None
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0

    @property
    def line(self) -> str:
        """The judge's cost in one line, apart from the graded calls."""
        tokens = f"{self.prompt_tokens}+{self.completion_tokens} tokens"
        calls = f"{self.calls} calls ({self.cached} cached)"
        return f"judge {self.model}: {calls}, {tokens}, {self.errors} unparsable answer(s) graded as fails"


class ItemScore(Shape):
    """One item of one variant, its repeats folded: the pass fraction (`pass` in the file), whether at
    least half passed, the majority output and how many distinct outputs there were."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    share: float | None = Field(default=None, alias="pass")  # files from before repeats were folded lack it
    passed: bool
    majority: str = ""
    distinct: int = 1
    expected: Any = None

    @property
    def fraction(self) -> float:
        """The share of its repeats that passed (a file without it: whether it passed)."""
        return float(self.passed) if self.share is None else self.share


class EvalVariant(Shape):
    """One variant (prompt version x model x adapter) of an eval, as it scored."""

    label: str
    pass_rate: float
    prompt_name: str | None = None
    prompt_id: str | None = None
    template: str | None = None
    mode: str | None = None
    model: str = ""
    adapter: str | None = None
    trials: int = 0
    passed: int = 0
    ci: list[float] = Field(default_factory=lambda: [0.0, 1.0])  # 95% over items
    mean_latency_s: float | None = None
    mean_completion_tokens: float | None = None
    mean_prompt_tokens: float | None = None
    cached: int = 0
    truncated: int = 0  # prompts cut to fit the context
    skipped: int = 0
    unrenderable: int = 0
    shots: str | None = None  # `4-shot similar`: the version's demonstrations
    notes: list[str] = Field(default_factory=list)


class EvalHeadline(Shape):
    """An eval run's row in `meta.json` (the list); its `summary.json` adds the per-item results."""

    id: str
    created_at: str
    dataset: str
    status: str
    variants: list[EvalVariant]
    dataset_sha256: str = ""
    split: str | None = None
    grader: str = ""
    repeat: int = 1
    request: dict[str, Any] = Field(default_factory=dict)  # all it takes to run it again (EvalRequest's fields)
    n_items: int = 0
    judge: JudgeCost | None = None
    error: str | None = None
    item_sketch: list[str] = Field(default_factory=list)  # the lowest of its items' digests: evals sharing items

    @property
    def scope(self) -> str:
        """`dataset:split`; `all` for a file that names no splits."""
        return f"{self.dataset}:{self.split or 'all'}"

    @property
    def done(self) -> bool:
        """Complete: only such an eval gives a verdict or is a baseline."""
        return self.status == "done"

    def to_dict(self) -> dict[str, Any]:
        """The file's shape: the fields it was read or made with, and those set since."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class EvalSummary(EvalHeadline):
    """An eval's `summary.json`: its headline and, per variant, each item's score."""

    items: dict[str, dict[str, ItemScore]]

    def scores(self, variant: int) -> dict[str, ItemScore]:
        """Variant `variant`'s item scores, by item id."""
        return self.items.get(str(variant), {})


class ResultRow(Shape):
    """One graded line of an eval's `results.jsonl`."""

    variant: int
    item: str


class GradedRow(ResultRow):
    """One call graded, from grading to the summary and the eval pane's cells, read by its fields: a line of
    `results.jsonl` as it is written (`to_dict`). Lines from before prompt tokens and truncation were kept
    lack them; a judge's answer, and why it could not be read, are on the rows a judge graded."""

    repeat: int = 0
    output: str
    expected: str | None
    passed: bool
    score: float
    latency_s: float | None
    prompt_tokens: int | None = None
    completion_tokens: int | None
    truncated: bool = False
    cached: bool
    judge: str | None = None
    judge_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The line's shape: the fields it was made or read with."""
        return self.model_dump(exclude_unset=True)


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


S = TypeVar("S", bound=Shape)


def parsed(shape: type[S], data: Any) -> tuple[S | None, str | None]:
    """`data` as a `shape`, or None and its first mismatch, as `field 'a.b': message`."""
    try:
        return shape.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"field '{where}': {first['msg'][:1].lower()}{first['msg'][1:]}" if where else first["msg"]


def problem(shape: type[Shape], data: Any) -> str | None:
    """None when `data` has the shape; else its first mismatch, as `field 'a.b': message`."""
    return parsed(shape, data)[1]


def checked(shape: type[Shape], data: Any) -> dict[str, Any] | None:
    """`data` as its model reads it (NaN losses as None, extra fields kept), or None when of another shape."""
    try:
        return shape.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError:
        return None
