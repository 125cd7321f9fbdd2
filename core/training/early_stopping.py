"""Early stopping on the dev metric: a run ends once its metric has not improved by more than `min_delta` for
`patience` evaluations in a row (as transformers' EarlyStoppingCallback and Keras' EarlyStopping decide), and
says where, why and which checkpoint was best. Pure: no torch, no files."""

from __future__ import annotations

import math
from typing import Any

from core.storage.runfolders import checkpoint_name
from core.training.config import TrainConfig

MODES = {"eval_loss": "min", "pass_rate": "max"}  # the direction in which each metric improves


class EarlyStopping:
    """Counts the evaluations since the metric last improved on its best by more than `min_delta`."""

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        if patience < 1 or min_delta < 0:
            raise ValueError("patience must be at least 1 and min_delta at least 0")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best: float | None = None
        self.waited = 0  # evaluations in a row that did not improve on `best`
        self.improved = False  # whether the last value set a new best

    def update(self, value: float) -> bool:
        """Take one evaluation's value; True when the run should stop here. A non-finite value never improves."""
        finite = math.isfinite(value)
        if self.best is None:
            self.improved = finite
        elif self.mode == "min":
            self.improved = finite and value < self.best - self.min_delta
        else:
            self.improved = finite and value > self.best + self.min_delta
        if self.improved:
            self.best, self.waited = value, 0
        else:
            self.waited += 1
        return self.waited >= self.patience


class EarlyStop:
    """A run's early stopping: fed its metric rows at eval steps, it knows the best step and, once the metric
    has plateaued, the sentence the status and the monitors show."""

    def __init__(self, config: TrainConfig) -> None:
        assert config.early_stop is not None
        self.metric = config.early_stop_metric
        self.stopping = EarlyStopping(config.early_stop, config.min_delta, MODES[self.metric])
        self.best_step: int | None = None
        self.replaced: int | None = None  # the best step a new best just replaced (its checkpoint may go)
        self.stopped_at: int | None = None

    def see(self, row: dict[str, Any]) -> bool:
        """One eval step's metrics row; True when the run stops at this step."""
        value = row.get(self.metric)
        if value is None:  # this metric is not measured at this step
            return False
        stop = self.stopping.update(float(value))
        if self.stopping.improved:
            self.replaced, self.best_step = self.best_step, row["step"]
        if stop:
            self.stopped_at = row["step"]
        return stop

    def reason(self) -> str | None:
        """`stopped early at step N: eval_loss has not improved for 3 evaluations; best checkpoint step-M`."""
        if self.stopped_at is None:
            return None
        by = f" by more than {self.stopping.min_delta:g}" if self.stopping.min_delta else ""
        n = self.stopping.patience
        best = (
            f"best checkpoint {checkpoint_name(self.best_step)} ({self.metric} {self.stopping.best:.4g}), "
            "the run's adapter"
            if self.best_step is not None and self.stopping.best is not None
            else f"no evaluation gave a finite {self.metric}"
        )
        return (
            f"stopped early at step {self.stopped_at}: {self.metric} has not improved{by} for {n} "
            f"evaluation{'s' if n > 1 else ''}; {best}"
        )
