"""Traces: a prompt run on the training rows, and the outputs the grader passes kept as a dataset of their own.

p->w->p trains a LoRA on them with the prompt; a distillation trains one on them without it (the input alone
-> the output), to take the prompt's place. Both start here. The derived dataset is a JSONL file under the
data dir (`derived/<eval id>.jsonl`, beside its `.json` note of where it came from): each row keeps its
source row's id and, in `derived_from`, that row's digest, which a run's ledger records in its place, so the
seal's checks read a LoRA trained on it as trained on the source rows. Rows come from the train split only:
never eval, test or sealed rows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.datasets import SOURCE_FIELD, Item
from core.engine.engines import Engine
from core.errors import TunelabError
from core.evals.grid import RowKind
from core.evals.plan import EvalRequest, Variant, sealed_request
from core.storage.atomic import write_atomic
from core.storage.paths import ensure_private_dir
from core.storage.runfolders import read_json

if TYPE_CHECKING:
    from core.workbench.service import PromptRef, Workbench

DERIVED_DIR = "derived"
TRAIN = "train"
TRACES = "traces"  # with the prompt: p->w
ANSWER_FIELDS = ("expected", "answer", "output", "target", "tunelab_expected")  # the first no row uses as input


@dataclass(frozen=True)
class Traces:
    """A prompt's passing outputs on the training rows, written as a dataset to train on."""

    path: Path  # the derived JSONL
    expected: str | None  # the field holding the outputs (None: chat rows, whose last assistant turn is it)
    prompt: str  # the prompt as a column shows it: `senti@4ab7b9 raw`
    prompt_id: str
    eval_id: str  # the eval that ran the prompt on the training rows
    kept: int
    tried: int

    @property
    def line(self) -> str:
        return (
            f"{self.prompt} passed {self.kept} of {self.tried} training rows (eval {self.eval_id}): kept as {self.path}"
        )


def prompt_traces(
    workbench: Workbench,
    ref: PromptRef,
    request: EvalRequest,
    engine: Engine,
    *,
    model: str,
    adapter: str | None = None,
    kind: str = TRACES,
    limit: int | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], object] | None = None,
) -> Traces:
    """Run `ref` on the request's dataset's training rows (the first `limit`), graded as `request` grades,
    once each, as an eval in history; write the rows whose output passed, that output as their answer, as a
    derived dataset. `kind` (traces: trained with the prompt, or distilled: without) is noted beside it."""
    look = replace(sealed_request(workbench.root, request), split=TRAIN, limit=limit, repeat=1, registered=None)
    dataset = look.load_data()
    if TRAIN not in dataset.splits:
        raise TunelabError(f"dataset {dataset.name} has no train split: traces come from training rows only")
    summary = workbench.run_eval(
        look, [Variant(ref.name, ref.version, model, adapter)], engine, new_prompts=[ref], on_progress=on_progress,
        cancel=cancel,
    )  # fmt: skip
    label = summary.variants[0].label.split(" | ")[0]
    if not summary.done:
        raise TunelabError(f"the traces of {label} stopped ({summary.status}): eval {summary.id} is partial")
    scores = summary.scores(0)
    rows = dataset.split(TRAIN)[:limit]
    kept = [(item, score.majority) for item in rows if (score := scores.get(item.id)) is not None and score.passed]
    if not kept:
        raise TunelabError(f"{label} passed none of the {len(rows)} training rows: no traces to train on")
    field = answer_field([item for item, _ in kept])
    path = ensure_private_dir(workbench.root / DERIVED_DIR) / f"{summary.id}.jsonl"
    write_atomic(
        path, "".join(json.dumps(derived_row(item, out, field), ensure_ascii=False) + "\n" for item, out in kept)
    )
    traces = Traces(path, field, label, ref.version.id, summary.id, len(kept), len(rows))
    note = {"kind": kind, "prompt": label, "prompt_id": ref.version.id, "eval": summary.id, "dataset": request.dataset}
    write_atomic(path.with_suffix(".json"), json.dumps({**note, "kept": traces.kept, "tried": traces.tried}))
    return traces


def answer_field(items: Sequence[Item]) -> str | None:
    """The field the outputs go in: one no row has as an input (None for chat rows: the last assistant turn)."""
    if items and items[0].messages:
        return None
    taken = {name for item in items for name in item.vars}
    return next(name for name in ANSWER_FIELDS if name not in taken)


def derived_row(item: Item, output: str, field: str | None) -> dict[str, Any]:
    """`item` with `output` as its answer: its id, its inputs (fields, or chat turns) and its source's digest."""
    row: dict[str, Any] = {"id": item.id, "split": TRAIN, SOURCE_FIELD: item.digest}
    if field is None:
        return {**row, "messages": [*item.messages, {"role": "assistant", "content": output}]}
    return {**row, **item.vars, field: output}


def reoptimized(root: Path, traces: Traces, prompt_id: str, label: str) -> None:
    """Note a prompt optimized on the LoRA trained on `traces` (p->w->p): the verdict gives it a row."""
    note = derived_note(root, str(traces.path)) or {}
    stages = {**note.get("reoptimized", {}), prompt_id: label}
    write_atomic(traces.path.with_suffix(".json"), json.dumps({**note, "reoptimized": stages}))


def derived_note(root: Path, dataset: str) -> dict[str, Any] | None:
    """What a derived dataset of this data dir was made from, or None for any other dataset."""
    path = Path(dataset).expanduser()
    if path.suffix != ".jsonl" or path.parent.resolve() != (root / DERIVED_DIR).resolve():
        return None
    return read_json(path.with_suffix(".json"))


def derived_info(root: Path, dataset: str) -> dict[str, Any]:
    """What the grid needs of a LoRA trained on a derived dataset (`core.evals.grid.build_grid`'s `loras`):
    its stage, kind, source prompt and, for each prompt optimized on it since, a row of its own; {} else."""
    note = derived_note(root, dataset)
    if note is None or not isinstance(note.get("prompt"), str):
        return {}
    prompt, source = note["prompt"], str(note.get("prompt_id", ""))
    if note.get("kind") == RowKind.DISTILLED:
        stage = f"distilled from {prompt}"
        return {"kind": RowKind.DISTILLED, "stage": stage, "trained_on": stage, "source": source}
    stages = note.get("reoptimized")
    stages = stages if isinstance(stages, dict) else {}
    return {
        "stage": "p->w",
        "trained_on": f"p->w (traces of {prompt})",
        "source": source,
        "stages": {pid: ("p->w->p", f"p->w->p ({label} re-optimized on it)") for pid, label in stages.items()},
    }
