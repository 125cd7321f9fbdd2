"""Batch evaluation: variants x dataset items (x repeats), graded, cached, and stored per run.

A variant is (prompt version or none, model, adapter or none). `core.evals.plan` decides and checks every
call first; here they run, cached calls first and the rest in one engine batch per (model, adapter, params),
rows streaming out through `on_row` as batches finish, so a UI can fill its matrix live. Each run writes
`evals/<id>/results.jsonl` (one line per call) and `summary.json` (`core.evals.stored`). No torch at import:
the TUI runs this through the worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from core.data.datasets import Item
from core.data.seals import remember_seal
from core.engine.engines import Engine, Engines
from core.engine.params import GenParams
from core.engine.protocol import GenResult
from core.engine.served import shown
from core.evals.cache import GenerationCache
from core.evals.grading import Grading
from core.evals.plan import Call, EvalRequest, Plan, Variant, plan_eval
from core.evals.stored import PLAN_FILE, RESULTS_FILE, WRITER_LOCK, store
from core.evals.summary import summarize
from core.history.store import new_id
from core.storage.atomic import open_append, open_private, write_atomic
from core.storage.paths import ensure_private_dir
from core.storage.schemas import EvalSummary, GradedRow, JudgeCost


def run_eval(
    root: Path,
    request: EvalRequest,
    variants: list[Variant],
    local: Engine,
    *,
    on_row: Callable[[GradedRow], object] | None = None,
    on_progress: Callable[[int, int], object] | None = None,
    cancel: threading.Event | None = None,
    on_start: Callable[[], object] | None = None,
) -> EvalSummary:
    """Run, grade and store one eval; returns its summary (also in `evals/<id>/summary.json`). `local` runs
    the local models' calls (in process or the worker); a served model's go to its engine. `on_start` runs
    once every input is checked, when the eval is about to exist (bad input stores nothing)."""
    cancel = cancel or threading.Event()
    # a served model by an inline URL with credentials: called with them, named (stored, cached) without them
    variants = [replace(v, model=shown(v.model)) for v in variants]
    request = replace(request, judge=shown(request.judge) if request.judge else None)
    engines = Engines(local)
    plan = plan_eval(root, request, variants, engines)
    remember_seal(root, plan.dataset.name, plan.request.holdout, plan.dataset.items)
    if on_start:
        on_start()
    run_id = "e" + new_id()
    folder = ensure_private_dir(Path(root) / "evals" / run_id)
    writer = _begin(folder, plan.request, plan.dataset.name, plan.dataset.sha256, variants, len(plan.items))
    grading = Grading(plan, on_row, on_progress)
    for vi, notes in plan.notes.items():
        grading.notes[vi].update(notes)
    error: BaseException | None = None  # a crashed worker or ctrl+c: the eval still ends in a known state
    try:
        _execute(root, plan, variants, engines, grading, folder, cancel)
    except BaseException as exc:
        error = exc
    finally:
        engines.close()
    status = "cancelled" if cancel.is_set() else "done"
    if error is not None:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    summary = _summary(run_id, plan, variants, grading, status, error)
    try:
        store(root, folder, summary)
    finally:
        os.close(writer)
    if error is not None:  # stored as partial with what finished; the caller still sees why it stopped
        raise error
    return summary


def _execute(
    root: Path,
    plan: Plan,
    variants: list[Variant],
    engines: Engines,
    grading: Grading,
    folder: Path,
    cancel: threading.Event,
) -> None:
    """Cached calls first, then the misses in one engine batch per (model, adapter, params); identical
    calls run once. What was computed is cached even when a later batch fails."""
    cache = GenerationCache(root)
    cached = cache.get_many([c.key for c in plan.calls]) if plan.request.use_cache else {}
    try:
        with os.fdopen(open_append(folder / RESULTS_FILE), "a", encoding="utf-8") as grading.out:
            misses = []
            for call in plan.calls:
                if call.key in cached:
                    grading.finish(call, cached[call.key], True)
                else:
                    misses.append(call)
            groups: dict[tuple, list[Call]] = defaultdict(list)
            for call in misses:
                v = variants[call.variant]
                params_json = json.dumps(call.params.to_dict(), sort_keys=True)
                groups[(v.model, plan.adapter_paths.get(v.adapter or ""), params_json)].append(call)
            seen: set[str] = set()
            for (model, adapter, params_json), group in groups.items():
                if cancel.is_set():
                    break
                unique: list[Call] = []
                duplicates: list[Call] = []
                for c in group:
                    (duplicates if c.key in seen else unique).append(c)
                    seen.add(c.key)
                on_result = partial(_finish_fresh, grading.finish, unique)
                params = GenParams.from_dict(json.loads(params_json))
                engines(model).batch(model, adapter, [c.prompt for c in unique], params, on_result, cancel)
                for c in duplicates:
                    if c.key in grading.fresh:
                        grading.finish(c, grading.fresh[c.key], True)
            grading.judge_rest(cancel)
    finally:
        if grading.fresh:
            cache.put_many(grading.fresh)
        if plan.judge is not None:
            plan.judge.finish()


SKETCH = 64  # digests kept per eval: two evals sharing a real part of their items share some of these


def sketch(items: list[Item]) -> list[str]:
    """The `SKETCH` lowest item digests (a bottom-k sketch): evals whose sketches meet ran on shared items,
    whatever the split, file or limit they were asked for."""
    return sorted({it.digest[:16] for it in items if it.digest})[:SKETCH]


def _summary(
    run_id: str, plan: Plan, variants: list[Variant], grading: Grading, status: str, error: BaseException | None
) -> EvalSummary:
    """The summary of what finished, with each variant's skipped count and, if it stopped, why."""
    summary = summarize(
        run_id, plan.request, plan.dataset.name, plan.dataset.sha256, variants, plan.items, grading.rows, status
    )
    for vi, v in enumerate(summary.variants):
        v.skipped = grading.skipped[vi]
        v.unrenderable = grading.unrenderable[vi]
        if grading.notes[vi]:
            v.notes = sorted(grading.notes[vi])
    summary.item_sketch = sketch(plan.items)
    if all(it.checks is not None for it in plan.items):
        summary.grader = "each row's __expected"  # the request's grader was not used
    if plan.judge is not None:
        summary.judge = JudgeCost.model_validate(plan.judge.tally.model_dump())  # apart from the graded calls
    if error is not None:
        summary.error = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    return summary


def _begin(folder: Path, request: EvalRequest, dataset: str, sha: str, variants: list[Variant], n_items: int) -> int:
    """Write the eval's plan and take its writer lock (kept until the summary is stored; the OS frees it however
    the process ends), so a folder left without a summary can be told from one still running and recovered."""
    plan = {
        "request": asdict(request),
        "dataset": dataset,
        "dataset_sha256": sha,
        "n_items": n_items,
        "variants": [
            {
                "name": v.name,
                "version": asdict(v.version) if v.version else None,
                "model": v.model,
                "adapter": v.adapter,
            }
            for v in variants
        ],
    }
    write_atomic(folder / PLAN_FILE, json.dumps(plan, ensure_ascii=False))
    fd = open_private(folder / WRITER_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _finish_fresh(
    finish: Callable[[Call, dict[str, Any], bool], None], calls: list[Call], index: int, result: GenResult
) -> None:
    finish(calls[index], result.to_dict(), False)  # the shape the cache and the results file keep
