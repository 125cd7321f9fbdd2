"""What every measure shares: repeated timing with a spread, and the shape of one result row."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

REPEATS = int(os.environ.get("BENCH_PAIRS", "5"))  # raised when a section is re-run on a noisy host
STEADY = 1.5  # paired ratios further apart than this (largest / smallest): the load changed mid-section


@dataclass
class Result:
    """One table row: `value` against `baseline` (same unit), and whether `target` holds (`met`). A paired
    row's `ratio` is the median of subject/baseline over pairs measured back to back, `spread` their range."""

    name: str
    value: float | None
    baseline: float | None
    unit: str
    target: str
    met: bool | None
    spread: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    reliable: bool | None = None  # set by the run: False when the machine's load moved during the section
    steady: bool | None = None  # a paired row: whether its pair ratios agree (a neighbour mid-run scatters them)
    crosses: bool | None = None  # a paired row: whether its pair ratios lie on both sides of the target

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline

    @classmethod
    def paired(
        cls, name: str, subject: Sample, base: Sample, unit: str, target: str, meets: Callable[[float], bool], note: str
    ) -> Result:
        """Subject and baseline alternated (ABAB): the figure is the median of the per-pair ratios."""
        ratios = [s / b for s, b in zip(subject.values, base.values, strict=True) if b]
        ratio = statistics.median(ratios)
        spread = f"{min(ratios):.2f}..{max(ratios):.2f}x over {len(ratios)} pairs"
        steady = max(ratios) <= STEADY * min(ratios)
        crosses = meets(min(ratios)) != meets(max(ratios))
        return cls(
            name, subject.median, base.median, unit, target, meets(ratio), spread, note,
            ratio=ratio, steady=steady, crosses=crosses,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    median: float
    low: float
    high: float
    values: list[float]

    def scaled(self, factor: float) -> Sample:
        return sample([v * factor for v in self.values])

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


def alternated(
    subject: Callable[[], float], base: Callable[[], float], repeats: int = REPEATS
) -> tuple[Sample, Sample]:
    """Each callable returns its own figure; one warm-up each, then pairs in ABBA order (subject first in
    even pairs, the baseline first in odd ones), so neither a change in the machine's load nor going second
    (a warmer cache, a fuller heap) favours one side."""
    subject()
    base()
    a, b = [], []
    for pair in range(repeats):
        if pair % 2:
            b.append(base())
            a.append(subject())
        else:
            a.append(subject())
            b.append(base())
    return sample(a), sample(b)


def seconds(fn: Callable[[], Any]) -> Callable[[], float]:
    """`fn` as a callable returning its wall seconds (for `alternated`)."""

    def run() -> float:
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    return run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def quiet_logs() -> None:
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
