"""A run's metrics as the trainer logs them: a row per step appended to metrics.jsonl and, with `report_to`, the
same step in the tracker. The trainer is the run's detached child, so a dashboard follows a run that the TUI
or the shell has left, and a resumed run reports again from its checkpoint."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from core.storage import runfolders, trackers
from core.storage.atomic import open_append
from core.training.config import TrainConfig

REPORTED = {  # a metrics row's field: its tag in the tracker
    "loss": "train/loss",
    "lr": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "eval_loss": "eval/loss",
    "pass_rate": "eval/pass_rate",  # at the steps whose checkpoint is scored (eval_items)
}


def reported(row: dict[str, Any]) -> dict[str, float]:
    """The row's tracked values; a missing or non-finite one (a diverged step's loss) is left out."""
    return {
        tag: float(row[key])
        for key, tag in REPORTED.items()
        if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])
    }


class MetricsLog:
    """metrics.jsonl and the run's tracker, written together; on ranks other than 0, nothing is written."""

    def __init__(self, run_dir: Path, config: TrainConfig, main: bool) -> None:
        self.run_dir, self.config, self.main = run_dir, config, main
        self.tracker: trackers.Tracker | None = None

    def __enter__(self) -> MetricsLog:
        if self.main and self.config.report_to:
            where = trackers.folder(self.run_dir, self.run_dir.name, self.config.report_dir)
            self.tracker = trackers.open_tracker(self.config.report_to, self.run_dir.name, self.config.to_dict(), where)
        path = self.run_dir / runfolders.METRICS_FILE
        self.file = os.fdopen(open_append(path), "a", encoding="utf-8") if self.main else open(os.devnull, "w")
        return self

    def write(self, row: dict[str, Any]) -> None:
        """One step's row, flushed (the monitor reads the file as it grows), then the same step tracked."""
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        values = reported(row)
        if self.tracker is not None and values:
            self.tracker.scalars(values, row["step"])

    def __exit__(self, *exc: object) -> None:
        try:
            if self.tracker is not None:
                self.tracker.close()
        finally:
            self.file.close()
