"""What every measure shares: repeated timing with a spread, and the shape of one result row."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

REPEATS = 5


@dataclass
class Result:
    """One table row: `value` against `baseline` (same unit), and whether `target` holds."""

    measure: str
    value: float
    baseline: float | None
    unit: str
    target: str
    ok: bool | None
    spread: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Sample:
    median: float
    low: float
    high: float
    values: list[float]

    def spread(self, unit: str = "", scale: float = 1.0) -> str:
        return f"{self.low * scale:.3g}..{self.high * scale:.3g}{unit}"


def sample(values: list[float]) -> Sample:
    return Sample(statistics.median(values), min(values), max(values), values)


def timed(fn: Callable[[], Any], repeats: int = REPEATS, warmup: int = 1) -> Sample:
    """Wall seconds of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return sample(out)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def quiet_logs() -> None:
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
