"""`compare --budget`: the data-budget curve, run. At each size (nested seeded subsets of the training rows,
`core.evals.budget_curve`): the prompt's k-shot candidates drawn from those rows only, graded on the dev rows
and the best kept; a LoRA trained on those rows only (its ledger lists exactly them), stopped early on its dev
eval loss with its best checkpoint kept; then one eval of the best
prompt, the LoRA and the LoRA with the best prompt on the same items. Every scoring is a stored eval, so the
verdict's counts of what was tried on these items see the candidates without being told; the curve is judged
with them counted and kept as a file the TUI's chart screen reads."""

from __future__ import annotations

import json
import statistics
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.prompts import PromptVersion
from core.data.shots import Shots
from core.engine.engines import Engine
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.evals.budget_curve import (
    Arm,
    Curve,
    best_candidate,
    judge_curve,
    nested_subsets,
    parse_sizes,
    point,
    resolve_sizes,
    shot_choices,
)
from core.evals.plan import NO_PROMPT, EvalRequest, Variant, sealed_request
from core.history.store import new_id, now_iso
from core.storage.atomic import write_atomic
from core.storage.runfolders import read_json, scores
from core.storage.schemas import EvalSummary
from core.training.config import TrainConfig
from core.training.splits import train_rows
from core.workbench.compare import CompareWatcher

if TYPE_CHECKING:
    from core.workbench.service import PromptRef, Workbench

FOLDER = "budget"  # the data dir's folder of curves, one JSON file each, named by a time-ordered id
PATIENCE = 2  # epochs without a better dev eval loss before a size's LoRA stops (`early_stopped`)
EPOCHS_CAP = 10_000  # the epochs option's bound


@dataclass
class BudgetPlan:
    """Everything a curve runs, checked before anything starts: the sizes and their rows, each size's prompt
    candidates (the prompt as it is first) and its LoRA configs (one per seed)."""

    request: EvalRequest
    options: ModelOptions
    prompt: PromptRef
    sizes: list[int]
    total: int  # training rows
    candidates: list[list[PromptVersion]]
    train: list[list[TrainConfig]]
    checkpoint: str = "final"

    @property
    def name(self) -> str:
        """The candidates are saved under this name, so the prompt's own name still means what it did."""
        return f"{self.prompt.name}-budget"


class BudgetWatcher(CompareWatcher):
    """A comparison's watcher, told too which size each stage is for."""

    def stage(self, what: str, size: int) -> None:
        """`prompts`, `train` or `arms` at `size` labelled rows is about to start."""


def budget_plan(
    workbench: Workbench,
    request: EvalRequest,
    options: ModelOptions,
    prompt: PromptRef,
    sizes: str,
    *,
    seeds: int = 1,
    train_settings: dict[str, Any] | None = None,
    checkpoint: str = "final",
    seed: int = 0,
) -> BudgetPlan:
    """The curve's plan: `sizes` as `16,64,all` (a size above the training rows is refused), the rows of each
    drawn in one order seeded by `seed`; seeds, checkpoint and each run's config checked as `compare` checks them."""
    asked = parse_sizes(sizes)
    base = workbench.compare_plan(
        request, options, [prompt], train=True, seeds=seeds, train_settings=train_settings, checkpoint=checkpoint
    )
    request = sealed_request(workbench.root, base.request)
    dataset = request.load_data()
    split = dataset.resolve_split(request.split)
    if split is None or split == base.train[0].split:
        raise TunelabError(
            f"{{0}} needs dev rows apart from the training rows: {{1}} '{request.split}' is not", "budget", "split"
        )
    rows = [it.id for it in train_rows(base.train[0], base.train[0].load_data())]
    resolved = resolve_sizes(asked, len(set(rows)), dataset.name)
    subsets = nested_subsets(rows, resolved, seed)
    every = [size == len(set(rows)) for size in resolved]
    bare = replace(prompt.version, shots=None)
    separator = prompt.version.shots.separator if prompt.version.shots else Shots(0).separator
    candidates = [
        [bare]
        + [
            replace(bare, shots=Shots(k, select, seed, separator=separator, pool=() if whole else subset))
            for k, select in shot_choices(size)
        ]
        for size, subset, whole in zip(resolved, subsets, every)
    ]
    train = [
        [early_stopped(replace(config, rows=() if whole else subset), size, len(set(rows))) for config in base.train]
        for size, subset, whole in zip(resolved, subsets, every)
    ]
    return BudgetPlan(request, options, prompt, resolved, len(set(rows)), candidates, train, checkpoint)


def early_stopped(config: TrainConfig, size: int, total: int) -> TrainConfig:
    """A size's LoRA given the steps that training on all `total` rows takes (its epochs over them), evaluated on
    dev once an epoch and stopped once its eval loss has not improved for `PATIENCE` epochs, its best checkpoint
    its adapter: 16 rows are not held to the 6 steps their 6 epochs make, nor over-trained. Settings that set
    their own early stopping or steps, or a run with no dev split, stay as they are."""
    if config.early_stop is not None or config.max_steps is not None or config.eval_split is None:
        return config
    epoch, budget = config.steps_per_epoch(size), config.steps_per_epoch(total) * config.epochs
    epochs = min(EPOCHS_CAP, max(config.epochs, budget / epoch))
    return replace(config, epochs=epochs, eval_every=epoch, early_stop=PATIENCE, early_stop_metric="eval_loss")


def run_budget(
    workbench: Workbench, plan: BudgetPlan, engine: Engine, watcher: BudgetWatcher | None = None,
    cancel: threading.Event | None = None,
) -> Curve:  # fmt: skip
    """The curve: each size's best prompt on the dev rows, its LoRAs, then the three arms on the same items;
    judged with every candidate counted, and kept (`last_curve`)."""
    watcher = watcher or BudgetWatcher()
    model = plan.options.model
    best = []
    for size, versions in zip(plan.sizes, plan.candidates):
        watcher.stage("prompts", size)
        summary = _eval(workbench, plan, [Variant(plan.name, v, model) for v in versions], engine, watcher, cancel)
        best.append(versions[best_candidate([v.pass_rate for v in summary.variants])])
    adapters = _train(workbench, plan, watcher, cancel)
    points, last = [], None
    for i, size in enumerate(plan.sizes):
        watcher.stage("arms", size)
        variants = [
            Variant(plan.name, best[i], model),
            *(Variant(NO_PROMPT, None, model, a) for a in adapters[i]),
            *(Variant(plan.name, best[i], model, a) for a in adapters[i]),
        ]
        last = _eval(workbench, plan, variants, engine, watcher, cancel)
        seeds = len(adapters[i])
        prompt = Arm.of(best[i].shots_label or "the prompt as it is", _scores(last, [0]))
        lora = Arm.of("LoRA", _scores(last, range(1, 1 + seeds)))
        both = Arm.of("LoRA with the best prompt", _scores(last, range(1 + seeds, 1 + 2 * seeds)))
        points.append(point(size, size == plan.total, prompt, lora, both, len(plan.candidates[i]), last.id))
    assert last is not None
    earlier, picked = _counted(workbench, plan, last, adapters)
    curve = judge_curve(points, earlier, picked, dataset=last.dataset, split=last.split or "", created_at=now_iso())
    save_curve(workbench.root, curve)
    return curve


def _eval(
    workbench: Workbench,
    plan: BudgetPlan,
    variants: list[Variant],
    engine: Engine,
    watcher: BudgetWatcher,
    cancel: threading.Event | None,
) -> EvalSummary:
    from core.workbench.service import PromptRef

    watcher.evaluating([v.label for v in variants])
    versions = {v.version.id: v.version for v in variants if v.version is not None}
    summary = workbench.run_eval(
        plan.request,
        variants,
        engine,
        new_prompts=[plan.prompt, *(PromptRef(plan.name, v, new=True) for v in versions.values())],
        on_row=watcher.row,
        on_progress=watcher.progress,
        cancel=cancel,
    )
    if not summary.done:
        raise TunelabError(f"data-budget curve stopped: eval {summary.id} {summary.status}")
    return summary


def _train(
    workbench: Workbench, plan: BudgetPlan, watcher: BudgetWatcher, cancel: threading.Event | None
) -> list[list[str]]:
    """Each size's LoRAs (one per seed), trained on its rows alone; with `checkpoint` best, each run's best."""
    total = sum(len(configs) for configs in plan.train)
    out: list[list[str]] = []
    for size, configs in zip(plan.sizes, plan.train):
        watcher.stage("train", size)
        runs: list[str] = []
        for config in configs:
            watcher.training(config, sum(len(c) for c in out) + len(runs), total)
            runs.append(workbench.train_and_wait(config, watcher, cancel))
        out.append(runs)
    if plan.checkpoint == "best":
        out = [[workbench.chosen_checkpoint(run) for run in runs] for runs in out]
    return out


def _scores(summary: EvalSummary, variants: Iterable[int]) -> dict[str, float]:
    """Each item's pass fraction, averaged over `variants` (a LoRA's seeds), on the items all of them graded."""
    per = [summary.scores(vi) for vi in variants]
    shared = set.intersection(*(set(s) for s in per)) if per else set()
    return {item: statistics.fmean(s[item].fraction for s in per) for item in sorted(shared)}


def _counted(workbench: Workbench, plan: BudgetPlan, last: EvalSummary, adapters: list[list[str]]) -> tuple[int, int]:
    """What each size's best was kept from beyond its own candidates: the prompt versions evaluated on these items
    that are none of the curve's (earlier work), and the checkpoints each LoRA was picked from with `best`."""
    ours = {v.id for versions in plan.candidates for v in versions}
    earlier = max(0, workbench.verdicts.tried_on(last).versions - len(ours))
    picked = 1
    if plan.checkpoint == "best":
        picked = max(len(scores(workbench.runs.path(ref.partition("@")[0]))) for runs in adapters for ref in runs)
    return earlier, max(1, picked)


def save_curve(root: Path, curve: Curve) -> Path:
    path = Path(root) / FOLDER / f"{new_id()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(curve.to_dict(), ensure_ascii=False))
    return path


def last_curve(root: Path) -> Curve | None:
    """The newest curve kept in the data dir; None when there is none. A damaged file is one line naming it."""
    folder = Path(root) / FOLDER
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    data = read_json(files[-1])
    if data is None:
        raise TunelabError(f"{files[-1]}: not readable as JSON")
    try:
        return Curve.from_dict(data)
    except TunelabError as exc:
        raise TunelabError(f"{files[-1]}: {exc}") from None
