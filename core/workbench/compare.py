"""The whole question as one unit of work: train the LoRAs a comparison needs, then grade every cell
(base and each LoRA x no prompt and each prompt). `tunelab compare` and the TUI's "Compare on the demo
task" both run it; they differ only in how they show progress (a `CompareWatcher`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.data.prompts import PromptVersion
from core.data.shots import Shots
from core.engine.options import ModelOptions
from core.evals.plan import EvalRequest
from core.training.config import TrainConfig

if TYPE_CHECKING:
    from core.storage.schemas import GradedRow

MAX_SEEDS = 20
CHECKPOINTS = ("final", "best")  # which adapter of a run a comparison judges: its last, or its best-scored
SCORED_ITEMS = 50  # eval rows a run trained for `best` scores at each eval step, when the eval sets no limit
DEMO_PROMPT_NAME = "senti"
# The demo task's prompt: a raw continuation the demo model was built to finish with a label.
DEMO_PROMPT = PromptVersion("{{text}} Overall, this review is", mode="raw", params={"max_new_tokens": 4})
# The same prompt given the training rows too (four random ones before each item): the k-shot column.
DEMO_SHOTS_NAME = "senti-4shot"
DEMO_SHOTS_PROMPT = replace(DEMO_PROMPT, shots=Shots(4, "random", 0))


@dataclass
class ComparePlan:
    """What a comparison runs: the eval (dataset, split, grader, decoding), the prompts besides "no prompt",
    the adapters it already has besides the base, and the runs to train first (one per seed, as is and with
    each prompt when asked). Every config is checked before anything starts."""

    request: EvalRequest
    options: ModelOptions
    prompts: list[Any]  # PromptRef
    adapters: list[str] = field(default_factory=list)
    train: list[TrainConfig] = field(default_factory=list)
    seeds: int = 1
    checkpoint: str = "final"
    also: list[str] = field(default_factory=list)  # more models graded beside it (a served one: its rows)
    # a LoRA graded only with these prompt versions (None: no prompt), not every one: a distilled LoRA replaces
    # its prompt, a p->w LoRA is judged with the prompts of its stages
    paired: dict[str, list[str | None]] = field(default_factory=dict)


class CompareWatcher:
    """How a front end follows a comparison; every method is called from the worker thread doing it."""

    def phase(self, text: str) -> None:
        """A step of a longer use case starts (p->w->p's searches, traces and LoRA; a distillation)."""

    def training(self, config: TrainConfig, index: int, total: int) -> None:
        """Run `index` of `total` is about to start."""

    def started(self, run_id: str) -> None:
        """A training run's process exists (the front end may follow its folder)."""

    def step(self, step: int, total: int) -> None:
        """The current run's progress."""

    def evaluating(self, labels: list[str]) -> None:
        """Training is over; the eval of these cells starts."""

    def row(self, graded: GradedRow) -> None:
        """One graded item."""

    def progress(self, done: int, total: int) -> None:
        """Items graded so far."""


def training_label(config: TrainConfig, seeds: int) -> str:
    what = "with the prompt" if config.template else "as is"
    return f"train ({what}{f', seed {config.seed}' if seeds > 1 else ''})"
