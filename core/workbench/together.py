"""Prompt and LoRA together, and a prompt distilled into a LoRA: comparisons with rows the plain one lacks.

p->w->p (`compare --both-together`, the verdict screen's "Both together"): the prompt optimized on the base
(p), its passing outputs on the training rows trained into a LoRA with it (w), then the prompt optimized again
on the base with that LoRA (p). The verdict shows the LoRA with the first prompt (p->w) and with the second
(p->w->p) beside the plain cells. A distillation (`compare --distill PROMPT`) trains a LoRA on PROMPT's passing
outputs from the input alone, and grades it with no prompt beside the prompt it replaces. Every search
candidate is a stored version and eval, each LoRA a run: the verdict's count of what was tried holds them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.data.datasets import SEALED
from core.data.prompts import PromptVersion
from core.engine.engines import Engine
from core.errors import TunelabError
from core.evals.grid import RowKind
from core.evals.plan import EvalRequest
from core.workbench.compare import ComparePlan, CompareWatcher
from core.workbench.optimizing import Optimized, optimize
from core.workbench.traces import TRACES, Traces, prompt_traces, reoptimized

if TYPE_CHECKING:
    from core.workbench.service import PromptRef, Workbench
    from core.workbench.verdicts import Comparison

BUDGET = 400  # graded generations each search may spend, unless given


@dataclass
class Together:
    """The comparison, and what each step found (one line each, for the front ends to say)."""

    comparison: Comparison
    lines: list[str] = field(default_factory=list)


@dataclass
class _Cells:
    """What the steps add to the plan: prompts, LoRAs, and the prompts each LoRA is graded with."""

    prompts: list[Any]
    adapters: list[str] = field(default_factory=list)
    paired: dict[str, list[str | None]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


@dataclass
class Steps:
    """How the steps run: the dev rows the searches score on (never the sealed split), the search budget, the
    LoRAs' settings (epochs, trackers), the training rows a trace runs on (None: all), the progress and cancel."""

    dev: EvalRequest
    budget: int = BUDGET
    train_settings: dict[str, Any] = field(default_factory=dict)
    trace_rows: int | None = None
    watcher: CompareWatcher = field(default_factory=CompareWatcher)
    cancel: threading.Event = field(default_factory=threading.Event)


def compare_together(
    workbench: Workbench,
    plan: ComparePlan,
    engine: Engine,
    steps: Steps,
    *,
    both: bool = False,
    distill: PromptRef | None = None,
) -> Together:
    """The plan's comparison with p->w and p->w->p (`both`: from its first prompt) and a LoRA distilled from
    `distill`, each trained and searched first; checked before anything runs."""
    if both and not plan.prompts:
        raise TunelabError("{0} needs a {1} to start the search from", "both_together", "prompt")
    if plan.checkpoint != "final":
        raise TunelabError("{0} best scores checkpoints: LoRAs trained on traces are judged as they end", "checkpoint")
    if steps.dev.split == SEALED:
        raise TunelabError("the searches run on the dev rows, never the sealed test split: give {0} eval", "split")
    cells = _Cells(list(plan.prompts))
    if both:
        _pwp(workbench, plan, engine, steps, cells)
    if distill is not None:
        _distilled(workbench, plan, distill, engine, steps, cells)
    prompts = list({ref.version.id: ref for ref in cells.prompts}.values())  # one column per version
    plan = replace(
        plan, prompts=prompts, adapters=[*plan.adapters, *cells.adapters], paired={**plan.paired, **cells.paired}
    )
    return Together(workbench.compare(plan, engine, steps.watcher, steps.cancel), cells.lines)


def _pwp(workbench: Workbench, plan: ComparePlan, engine: Engine, steps: Steps, cells: _Cells) -> None:
    """p on the base, its traces trained into w with it, p again on base + w."""
    from core.workbench.service import PromptRef

    start, model, watcher = plan.prompts[0], plan.options.model, steps.watcher
    watcher.phase(f"p: optimize {start.name} on {model}")
    first = _search(workbench, start, engine, steps, model)
    p = PromptRef(f"{start.name}-opt", first.best, new=True) if first.best.id != start.version.id else start
    cells.lines.append(
        f"p: {p.name}@{p.version.id[:6]} ({first.best_change}), best of {len(first.search.scored)} candidates"
    )
    traces = _traces(workbench, p, engine, steps, model, TRACES)
    cells.lines.append(f"traces: {traces.line}")
    lora = _train(workbench, plan, traces, steps, p.version, [p])
    cells.lines.append(f"w: LoRA {lora} trained on them with {traces.prompt}")
    watcher.phase(f"p again: optimize {p.name} on {model} + {lora}")
    second = _search(workbench, p, engine, steps, model, lora)
    again = p
    if second.best.id != p.version.id:
        again = PromptRef(f"{start.name}-pwp", second.best, new=True)
        label = f"{again.name}@{again.version.id[:6]} {again.version.mode}"
        reoptimized(workbench.root, traces, again.version.id, label)
        cells.lines.append(
            f"p again: {label} ({second.best_change}), best of {len(second.search.scored)} candidates on the LoRA"
        )
    else:
        cells.lines.append(f"p again: nothing beat {p.name}@{p.version.id[:6]} on the LoRA: p->w->p is p->w")
    cells.prompts += [p, again]
    cells.adapters.append(lora)
    cells.paired[lora] = list(dict.fromkeys([p.version.id, again.version.id]))


def _distilled(
    workbench: Workbench, plan: ComparePlan, source: PromptRef, engine: Engine, steps: Steps, cells: _Cells
) -> None:
    """`source`'s traces trained into a LoRA from the input alone, graded with no prompt beside `source`."""
    traces = _traces(workbench, source, engine, steps, plan.options.model, RowKind.DISTILLED)
    cells.lines.append(f"distill: {traces.line}")
    lora = _train(workbench, plan, traces, steps, None, [])
    cells.lines.append(f"distilled: LoRA {lora} trained on them with no prompt, in place of {traces.prompt}")
    cells.prompts.append(source)
    cells.adapters.append(lora)
    cells.paired[lora] = [None]


def _search(
    workbench: Workbench, start: PromptRef, engine: Engine, steps: Steps, model: str, adapter: str | None = None
) -> Optimized:
    return optimize(
        workbench, start.name, start.version, steps.dev, engine, budget=steps.budget, model=model, adapter=adapter,
        cancel=steps.cancel, on_round=lambda search: steps.watcher.progress(search.calls, steps.budget),
    )  # fmt: skip


def _traces(workbench: Workbench, ref: PromptRef, engine: Engine, steps: Steps, model: str, kind: str) -> Traces:
    steps.watcher.phase(f"traces: {ref.name} on the training rows")
    return prompt_traces(
        workbench, ref, steps.dev, engine, model=model, kind=kind, limit=steps.trace_rows, cancel=steps.cancel,
        on_progress=steps.watcher.progress,
    )  # fmt: skip


def _train(
    workbench: Workbench,
    plan: ComparePlan,
    traces: Traces,
    steps: Steps,
    prompt: PromptVersion | None,
    new: list[PromptRef],
) -> str:
    """A LoRA on the derived rows (all of them: no eval loss), with `prompt` or, None, the input alone."""
    config = workbench.train_config(
        {**steps.train_settings, "split": "train", "eval_split": None, "holdout": 0.0},
        options=replace(plan.options, adapter=None),
        dataset=str(traces.path),
        expected=traces.expected,
        prompt=prompt,
    )
    steps.watcher.phase(f"training on the {traces.kept} traces of {traces.prompt}")
    return workbench.train_and_wait(config, steps.watcher, steps.cancel, new)
