"""The comparison grid of one eval: a row per model variant (the base, each LoRA, each served model: its
`kind`), a column per prompt (none,
each version in its mode), and in each cell the pass rate with its interval, latency and tokens.

LoRAs trained the same way with different seeds share a row: their cell shows the mean pass rate and the
spread across seeds, so "LoRA beats prompt" never rests on one lucky run. Each item scores its pass fraction
over the cell's seeds and repeats (2 seeds, one passing: 0.5), and the verdict tests those scores; the
cell's interval treats the item as the unit (`core.evals.stats`). Pure data: the service adds what each
LoRA was trained on and what it cost.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.evals.stats import binary, interval
from core.storage.schemas import EvalSummary, EvalVariant

BASE = "base"


class RowKind(StrEnum):
    """What a row of the grid is, set where the row is built (`build_grid`) and read by every reader: the
    verdict's approaches, the costs in the report, the verdict screen and the CLI, `compare --json`."""

    BASE = "base"  # a local model as it is
    LORA = "lora"  # a model with LoRA adapters (the seeds of one training share a row)
    SERVED = "served"  # a model behind an OpenAI-compatible endpoint, as it is
    OPTIMIZED = "optimized"  # reserved: a prompt an optimizer wrote (no row is built as one yet)
    DISTILLED = "distilled"  # a LoRA trained on a prompt's passing answers, used with no prompt in its place

    @property
    def trained(self) -> bool:
        """Weights trained for the task: the verdict's "LoRA" approaches, the report's training cost."""
        return self in (RowKind.LORA, RowKind.DISTILLED)


@dataclass(frozen=True)
class Row:
    key: str
    label: str  # "demo (base)", "demo+t18eb468a as is", "demo+LoRA with senti@4ab7b9 ×3 seeds"
    model: str
    kind: RowKind
    adapters: tuple[str, ...] = ()  # empty for the base
    trained_on: str | None = None  # "as is", "senti@4ab7b9 raw", "elsewhere"; None for the base
    cost: dict[str, Any] = field(default_factory=dict)  # training wall time, device, parameters, size
    stage: str = ""  # a LoRA trained on a prompt's passing outputs: "p->w", "p->w->p", "distilled from senti@…"
    source: str = ""  # then: the id of that prompt's version


@dataclass(frozen=True)
class Column:
    key: str  # the prompt version id, "" for no prompt
    label: str  # "no prompt" or "senti@4ab7b9 raw"
    template: str | None = None
    cost: dict[str, Any] = field(default_factory=dict)  # extra prompt tokens and latency per call


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    variants: tuple[int, ...]  # one per seed
    label: str
    pass_rate: float  # mean over seeds
    spread: float | None  # standard deviation of the seeds' pass rates; None with one seed
    ci: tuple[float, float]
    latency_s: float | None
    prompt_tokens: float | None
    completion_tokens: float | None
    passed: dict[str, bool]  # per item: at least half the seeds pass it (the fixed/broken lists)
    scores: dict[str, float] = field(default_factory=dict)  # per item: pass fraction over seeds and repeats


@dataclass(frozen=True)
class Grid:
    rows: list[Row]
    cols: list[Column]
    cells: dict[tuple[int, int], Cell]

    def cell(self, row: int, col: int) -> Cell | None:
        return self.cells.get((row, col))

    def all(self) -> list[Cell]:
        return [self.cells[k] for k in sorted(self.cells)]

    def approach(self, cell: Cell) -> tuple[bool, bool]:
        """(with a prompt, with a LoRA)."""
        return bool(self.cols[cell.col].key), self.rows[cell.row].kind.trained

    def diff(self, a: Cell, b: Cell) -> tuple[list[str], list[str]]:
        """Items `a` fixes (passes where `b` fails) and breaks, over the items both graded."""
        shared = [i for i in a.passed if i in b.passed]
        return [i for i in shared if a.passed[i] and not b.passed[i]], [
            i for i in shared if b.passed[i] and not a.passed[i]
        ]


def _mean(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.fmean(known), 4) if known else None


def build_grid(
    summary: EvalSummary,
    loras: Mapping[str, Mapping[str, Any]] | None = None,
    served: Mapping[str, Mapping[str, Any]] | None = None,
) -> Grid:
    """The grid of `summary`'s variants. `loras[adapter]` may give `group` (adapters of one group are seeds
    of one row), `trained_on` and `cost`; an adapter it does not know is a row of its own. `served[model]`
    is a served model's cost (its endpoint and prices): a model in it is a served row. Each row's `kind`
    is set here, once. A LoRA trained on a prompt's passing outputs names its `stage` and `source` (that
    prompt), and `kind` distilled when it replaces the prompt; `stages[prompt id]` is (stage, trained_on) for
    a prompt optimized on it since: its cells with that prompt are a row of their own (p->w->p)."""
    loras, served = loras or {}, served or {}
    variants = summary.variants
    rows: list[Row] = []
    cols: list[Column] = []
    members: dict[tuple[int, int], list[int]] = {}
    for vi, v in enumerate(variants):
        adapter = v.adapter
        info = loras.get(adapter, {}) if adapter else {}
        staged = (info.get("stages") or {}).get(v.prompt_id or "")
        if staged:  # a prompt optimized on this LoRA since: its cells are a row of their own
            group = f"{info.get('group', adapter)}:{staged[0]}"
            info = {**info, "stage": staged[0], "trained_on": staged[1], "group": group}
        row_key = f"{v.model}:{info.get('group', adapter) if adapter else BASE}"
        r = next((i for i, row in enumerate(rows) if row.key == row_key), None)
        if r is None:
            rows.append(_row(row_key, v, info, served.get(v.model)))
            r = len(rows) - 1
        elif adapter and adapter not in rows[r].adapters:
            rows[r] = _with_adapter(rows[r], adapter)
        col_key = v.prompt_id or ""
        c = next((i for i, col in enumerate(cols) if col.key == col_key), None)
        if c is None:
            shots = f" {v.shots}" if v.shots else ""  # `senti@4ab7b9 raw 4-shot random`
            label = f"{v.prompt_name}@{col_key[:6]} {v.mode}{shots}" if col_key else "no prompt"
            cols.append(Column(col_key, label, v.template))
            c = len(cols) - 1
        members.setdefault((r, c), []).append(vi)
    cells = {key: _cell(summary, key, vis, rows, cols) for key, vis in members.items()}
    return Grid(rows, _priced(cols, cells), cells)


def _row(key: str, variant: EvalVariant, info: Mapping[str, Any], served: Mapping[str, Any] | None) -> Row:
    """The row of `variant`: a LoRA (with what it was trained on and cost), else a served model (`served` is
    its endpoint and prices) or the local base."""
    model, adapter = variant.model, variant.adapter
    if not adapter:
        if served is not None:
            return Row(key, f"{model} (base)", model, RowKind.SERVED, cost=dict(served))
        return Row(key, f"{model} (base)", model, RowKind.BASE)
    trained_on = str(info.get("trained_on") or "elsewhere")
    return Row(
        key,
        f"{model}+{Path(str(adapter)).name[:9]} {trained_on}",
        model,
        RowKind.DISTILLED if info.get("kind") == RowKind.DISTILLED else RowKind.LORA,
        (adapter,),
        trained_on,
        dict(info.get("cost", {})),
        str(info.get("stage") or ""),
        str(info.get("source") or ""),
    )


def _with_adapter(row: Row, adapter: str) -> Row:
    adapters = (*row.adapters, adapter)
    label = f"{row.model}+LoRA {row.trained_on} ×{len(adapters)} seeds"
    return replace(row, label=label, adapters=adapters)


def _cell(summary: EvalSummary, key: tuple[int, int], vis: list[int], rows: list[Row], cols: list[Column]) -> Cell:
    variants = [summary.variants[vi] for vi in vis]
    rates = [v.pass_rate for v in variants]
    votes: dict[str, list[bool]] = {}
    fractions: dict[str, list[float]] = {}
    for vi in vis:
        for item, score in summary.scores(vi).items():
            votes.setdefault(item, []).append(score.passed)
            fractions.setdefault(item, []).append(score.fraction)
    passed = {item: sum(seen) * 2 >= len(seen) for item, seen in votes.items()}
    scores = {item: statistics.fmean(seen) for item, seen in fractions.items()}
    ci = variants[0].ci or [0.0, 1.0]
    if len(variants) > 1 or not binary(scores.values()):  # seeds or repeats: the item is the unit
        ci = list(interval(list(scores.values())))
    r, c = key
    label = variants[0].label if len(vis) == 1 else f"{cols[c].label} | {rows[r].label}"
    if rows[r].stage and len(vis) == 1:  # the verdict's sentence names the stage: `p->w->p: senti@… | demo+t…`
        label = f"{rows[r].stage}: {label}"
    return Cell(
        r,
        c,
        tuple(vis),
        label,
        round(statistics.fmean(rates), 4),
        round(statistics.stdev(rates), 4) if len(rates) > 1 else None,
        (float(ci[0]), float(ci[1])),
        _mean([v.mean_latency_s for v in variants]),
        _mean([v.mean_prompt_tokens for v in variants]),
        _mean([v.mean_completion_tokens for v in variants]),
        passed,
        scores,
    )


def _priced(cols: list[Column], cells: dict[tuple[int, int], Cell]) -> list[Column]:
    """Each prompt's cost against no prompt, on the first row that has both: the extra prompt tokens per call
    and the latency they add."""
    if not any(not col.key for col in cols):
        return cols
    bare = next(c for c, col in enumerate(cols) if not col.key)
    out = []
    for c, col in enumerate(cols):
        pair = next(
            ((cells[(r, c)], cells[(r, bare)]) for (r, cc) in sorted(cells) if cc == c and (r, bare) in cells), None
        )
        if col.key and pair is not None:
            with_prompt, without = pair
            cost: dict[str, Any] = {}
            if with_prompt.prompt_tokens is not None and without.prompt_tokens is not None:
                cost["extra_prompt_tokens"] = round(with_prompt.prompt_tokens - without.prompt_tokens, 1)
            if with_prompt.latency_s is not None and without.latency_s is not None:
                cost["added_latency_s"] = round(with_prompt.latency_s - without.latency_s, 4)
            col = Column(col.key, col.label, col.template, cost)
        out.append(col)
    return out
