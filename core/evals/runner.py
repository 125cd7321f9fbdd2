"""Batch evaluation: variants x dataset items (x repeats), graded, cached, and stored per run.

A variant is (prompt version or none, model, adapter or none). Rows stream out through `on_row` as
batches finish, so a UI can fill its matrix live. Each run writes `evals/<id>/results.jsonl` (one
line per call) and `summary.json` (per-variant rates and per-item aggregates); only the summary's
headline numbers go to the metadata DB. No torch at import: the TUI runs this through the worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from tinydb import Query

from core.data.datasets import HOLDOUT, SEALED, Dataset, Item, load_dataset
from core.data.graders import Grader, final_answer, parse_grader
from core.data.prompts import PromptVersion, item_prompt
from core.data.seals import check_seal, fixed_holdout, remember_seal, repeats_note, unvouched_note
from core.data.templates import Template
from core.engine.adapterfiles import check_adapter
from core.engine.engines import Engine, Engines
from core.engine.modelref import folder_fingerprint, resolve
from core.engine.params import GenParams
from core.engine.protocol import GenResult
from core.engine.served import LISTED, shown
from core.errors import TunelabError
from core.evals.cache import GenerationCache, cache_key
from core.evals.grading import Call, Grading
from core.evals.judge import Judge, is_judge, rubric_text
from core.evals.summary import summarize
from core.history.records import eval_record
from core.history.store import History, new_id
from core.storage.atomic import open_append, open_private, write_atomic
from core.storage.meta import Meta
from core.storage.paths import ensure_private_dir
from core.storage.schemas import EvalHeadline, EvalSummary, JudgeCost, parsed

RUNS_TABLE, BASELINES_TABLE = "eval_runs", "baselines"


NO_PROMPT = "no prompt"  # a variant's name when it has no prompt


@dataclass(frozen=True)
class Variant:
    name: str  # the prompt's name, or NO_PROMPT
    version: PromptVersion | None
    model: str = "demo"
    adapter: str | None = None

    @property
    def label(self) -> str:
        """`senti@4ab7b9 raw | demo+t18eb468a`: the prompt version (as `prompts show` takes it) and its
        mode, the model, and the adapter."""
        prompt = f"{self.name}@{self.version.id[:6]} {self.version.mode}" if self.version else "no prompt"
        if not self.adapter:
            return f"{prompt} | {self.model}"
        run, at, step = Path(self.adapter).name.partition("@")  # run id or folder; a run's checkpoint: @step-N
        return f"{prompt} | {self.model}+{run[:9]}" + (
            f"@{step.removeprefix('step-').lstrip('0') or '0'}" if at else ""
        )


@dataclass
class EvalRequest:
    dataset: str
    split: str | None = "auto"
    grader: str = "exact"
    repeat: int = 1
    use_cache: bool = True
    limit: int | None = None
    expected: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    eval_fraction: float = HOLDOUT  # rows of a file with no splits held out as `eval`
    truncate: str = "left"  # a prompt over the model's context: cut its start (left), its end (right), or skip
    skip_unrenderable: bool = False  # a row the model's template cannot render: skipped (counted), not refused
    holdout: float = 0.0  # of the eval rows, this share sealed as `test` (a dataset's own test split: 0)
    judge: str | None = None  # the model (served or local) that grades `judge:RUBRIC` specs; else config's
    registered: list[str] | None = None  # a final look: the two cells chosen on dev, the only two it tests

    @classmethod
    def of(cls, summary: EvalHeadline) -> EvalRequest:
        """The request an eval ran with (its fields this version knows), to look at its items or run it again."""
        known = {f.name for f in fields(cls)}
        return cls(**{"dataset": summary.dataset, **{k: v for k, v in summary.request.items() if k in known}})

    def load_data(self) -> Dataset:
        """The request's dataset, split as every eval, run and look at it splits it."""
        return load_dataset(
            self.dataset, expected=self.expected, mapping=self.mapping, holdout=self.eval_fraction, sealed=self.holdout
        )


PLAN_FILE = "plan.json"  # all it takes to summarize what finished, should the process die
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
WRITER_LOCK = ".writer.lock"  # held by the process running the eval until its summary is stored


@dataclass
class Plan:
    """Everything an eval will do, checked before anything is written: its items, graders and calls."""

    request: EvalRequest
    dataset: Dataset
    items: list[Item]
    answers: dict[str, tuple[str | None, ...]]  # per item: every accepted answer (a list's, or the one)
    graders: dict[str, Grader]
    adapter_paths: dict[str, str]
    calls: list[Call]
    judge: Judge | None = None
    notes: dict[int, list[str]] = field(default_factory=dict)  # per variant: said with its results


def run_eval(
    root: Path,
    request: EvalRequest,
    variants: list[Variant],
    local: Engine,
    *,
    on_row: Callable[[dict[str, Any]], object] | None = None,
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


def plan_eval(root: Path, request: EvalRequest, variants: list[Variant], engines: Engines) -> Plan:
    """The dataset read, every template and adapter checked, the graders built and one call per variant,
    repeat and item keyed for the cache: any bad input fails here, before the eval exists."""
    if not variants:
        raise TunelabError("an eval needs at least one variant")
    if not 1 <= request.repeat <= 100:
        raise TunelabError(f"repeat must be between 1 and 100, got {request.repeat}")
    request = sealed_request(root, request)
    dataset = request.load_data()
    request = replace(request, split=dataset.resolve_split(request.split))
    items = dataset.split(request.split)[: request.limit]
    if not items:
        raise TunelabError(f"dataset {dataset.name} has no items in split '{request.split}'")
    unvouched = check_seal(root, [v.adapter for v in variants if v.adapter], items) if request.split == SEALED else []
    for v in variants:  # every template error surfaces before the first generation
        if v.version is not None:
            dataset.check_template(Template(v.version.template), items)
            dataset.check_template(Template(v.version.system), items)
    answers = {it.id: tuple(None if a is None else final_answer(a) for a in it.accepted) for it in items}
    labels = sorted({a for accepted in answers.values() for a in accepted if a is not None})
    specs = {c for it in items for c in it.checks or ()} | (
        {request.grader} if any(it.checks is None for it in items) else set()
    )
    graders = {spec: parse_grader(spec, labels) for spec in specs if not is_judge(spec)}
    judged = sorted(spec for spec in specs if is_judge(spec))
    for spec in judged:
        rubric_text(spec)  # an empty rubric or an oversized file fails here
    judge = _judge(root, request, engines, judged)
    request = replace(request, judge=judge.model if judge else request.judge)
    fallback = next((v.version.gen_params for v in variants if v.version), GenParams())
    # pickle weights are refused (or allowed) by the loader; a fingerprint reads no weights
    for model in dict.fromkeys(v.model for v in variants):
        engines(model).check(model)
    fingerprints = {v.model: engines(v.model).fingerprint(v.model) for v in variants}
    adapter_paths = {v.adapter: engines(v.model).adapter(root, v.model, v.adapter) for v in variants if v.adapter}
    for v in variants:  # a damaged adapter, or one for another base, is refused before the eval exists
        path = adapter_paths.get(v.adapter or "")
        if path is not None and engines(v.model) is engines.local:
            source = resolve(v.model, allow_pickle=True)
            check_adapter(Path(path), v.model, Path(source.location) if source.local else None)
    adapter_prints = {
        ref: path if path.startswith(LISTED) else folder_fingerprint(Path(path)) for ref, path in adapter_paths.items()
    }
    calls: list[Call] = []
    for vi, v in enumerate(variants):
        base = v.version.gen_params if v.version else fallback
        for r in range(request.repeat):
            params = base if r == 0 or base.seed is None else replace(base, seed=base.seed + r)
            params = replace(params, truncate=request.truncate)
            for ii, item in enumerate(items):
                prompt = item_prompt(v.version, item)
                adapter_print = adapter_prints.get(v.adapter or "")
                engine = engines(v.model)
                key = cache_key(
                    fingerprints[v.model], adapter_print, prompt.to_dict(), params.to_dict(), engine.numerics
                )
                if not engine.cacheable(params):  # a sampled served call draws afresh
                    key += f":{new_id()}"
                calls.append(Call(vi, ii, r, prompt, params, key))
    notes = {vi: [unvouched_note(v.adapter)] for vi, v in enumerate(variants) if v.adapter in unvouched}
    if dataset.repeats:
        for vi in range(len(variants)):
            notes.setdefault(vi, []).append(repeats_note(dataset.repeats))
    return Plan(request, dataset, items, answers, graders, adapter_paths, calls, judge, notes)


def sealed_request(root: Path, request: EvalRequest) -> EvalRequest:
    """The request with its dataset's stored seal (or the one it asks for, never sealed before)."""
    holdout = fixed_holdout(
        root,
        request.dataset,
        expected=request.expected,
        mapping=request.mapping,
        eval_fraction=request.eval_fraction,
        holdout=request.holdout,
    )
    return replace(request, holdout=holdout)


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


def _judge(root: Path, request: EvalRequest, engines: Engines, specs: list[str]) -> Judge | None:
    """The judge of the `judge:` specs: the request's, else config.toml's `judge`; none needed, none made."""
    if not specs:
        return None
    model = request.judge
    if not model:
        from core.storage.config import load_config

        model = load_config().judge
    if not model:
        raise TunelabError(f"grader '{specs[0][:40]}' needs a judge model: give {{0}} MODEL", "judge")
    engine = engines(model)
    try:
        engine.check(model)
    except TunelabError as exc:
        raise TunelabError(f"{{0}} {model}: {exc}", "judge") from None
    return Judge(model, shown(model), engine, root, request.use_cache)


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


def store(root: Path, folder: Path, summary: EvalSummary) -> None:
    """An eval's summary in its folder, its row in the list and its history record."""
    whole = summary.to_dict()
    write_atomic(folder / SUMMARY_FILE, json.dumps(whole, ensure_ascii=False))
    headline = {k: v for k, v in whole.items() if k != "items"}
    Meta(root).write(lambda db: db.table(RUNS_TABLE).insert(headline))
    History(root).add(eval_record(summary))


def _finish_fresh(
    finish: Callable[[Call, dict[str, Any], bool], None], calls: list[Call], index: int, result: GenResult
) -> None:
    finish(calls[index], result.to_dict(), False)  # the shape the cache and the results file keep


class EvalRuns:
    """Stored eval runs, and the pinned baseline per dataset split."""

    def __init__(self, root: Path) -> None:
        self.root, self.meta = Path(root), Meta(root)
        self.problems: list[str] = []  # rows left out, one line each

    def list(self) -> list[EvalHeadline]:
        """Eval runs, newest first; a row of another shape (a hand-edited meta.json) is left out and named."""
        listed = []
        for row in self.meta.read(RUNS_TABLE)[::-1]:
            headline, why = parsed(EvalHeadline, row)
            if headline is not None:
                listed.append(headline)
                continue
            line = f"{self.meta.path}: eval row {str(row.get('id', '?'))[:30]!r} left out ({why})"
            if line not in self.problems:
                self.problems.append(line)
        return listed

    def load(self, run_id: str) -> EvalSummary:
        ids = [r.id for r in self.list() if r.id.startswith(run_id)] if run_id else []
        if len(ids) != 1:
            raise TunelabError(f"no eval run '{run_id}'" if not ids else f"eval run '{run_id}' is ambiguous")
        path = self.root / "evals" / ids[0] / SUMMARY_FILE
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TunelabError(f"eval run {ids[0]}: summary unreadable ({exc})") from None
        loaded, why = parsed(EvalSummary, summary)
        if loaded is None:
            raise TunelabError(f"{path}: not an eval summary, damaged or hand-edited ({why})")
        return loaded

    def pin(self, run_id: str, variant: int = 0) -> dict[str, Any]:
        """Make (run, variant) the baseline for its dataset split; later runs are compared to it."""
        summary = self.load(run_id)
        if not summary.done:
            raise TunelabError(f"eval run {summary.id} is {summary.status}: only a complete eval is a baseline")
        if not 0 <= variant < len(summary.variants):
            raise TunelabError(f"eval run {summary.id} has no variant {variant}")
        key = f"{summary.dataset}:{summary.split}"
        doc = {"key": key, "run": summary.id, "variant": variant}
        self.meta.write(lambda db: db.table(BASELINES_TABLE).upsert(doc, Query().key == key))
        return doc

    def baseline_for(self, dataset: str, split: str | None) -> tuple[EvalSummary, int] | None:
        key = f"{dataset}:{split}"
        pins = [d for d in self.meta.read(BASELINES_TABLE) if d["key"] == key]
        if not pins:
            return None
        return self.load(pins[0]["run"]), pins[0]["variant"]


def compare(summary: EvalSummary, baseline: EvalSummary, baseline_variant: int) -> list[dict[str, Any]]:
    """Per variant: change in pass rate and the items fixed and broken against the baseline."""
    base_rate = baseline.variants[baseline_variant].pass_rate
    base_items = baseline.scores(baseline_variant)
    out = []
    for vi, v in enumerate(summary.variants):
        items = summary.scores(vi)
        shared = sorted(set(items) & set(base_items))
        out.append(
            {
                "delta": v.pass_rate - base_rate,
                "fixed": [i for i in shared if items[i].passed and not base_items[i].passed],
                "broken": [i for i in shared if not items[i].passed and base_items[i].passed],
            }
        )
    return out
