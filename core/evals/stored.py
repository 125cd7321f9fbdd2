"""Stored evals: each run's folder (`plan.json`, `results.jsonl`, `summary.json`), its headline row in the
metadata DB and its history record; the list of runs, loading one, and the pinned baseline per dataset split
with the items a later run fixes and breaks against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinydb import Query

from core.errors import TunelabError
from core.history.records import eval_record
from core.history.store import History
from core.storage.atomic import write_atomic
from core.storage.meta import Meta
from core.storage.schemas import EvalHeadline, EvalSummary, GradedRow, ResultRow, parsed, problem

RUNS_TABLE, BASELINES_TABLE = "eval_runs", "baselines"
PLAN_FILE = "plan.json"  # all it takes to summarize what finished, should the process die
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
WRITER_LOCK = ".writer.lock"  # held by the process running the eval until its summary is stored


def store(root: Path, folder: Path, summary: EvalSummary) -> None:
    """An eval's summary in its folder, its row in the list and its history record."""
    whole = summary.to_dict()
    write_atomic(folder / SUMMARY_FILE, json.dumps(whole, ensure_ascii=False))
    headline = {k: v for k, v in whole.items() if k != "items"}
    Meta(root).write(lambda db: db.table(RUNS_TABLE).insert(headline))
    History(root).add(eval_record(summary))


def graded_rows(folder: Path) -> list[GradedRow]:
    """An eval folder's graded rows, as they were graded; a line torn by a crash (no row's shape at all) is
    left out, and a row of another shape is one line naming it and its first bad field."""
    path = folder / RESULTS_FILE
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if problem(ResultRow, data) is not None:
            continue
        graded, why = parsed(GradedRow, data)
        if graded is None:
            raise TunelabError(f"{path}:{number}: a graded row of another shape ({why})")
        rows.append(graded)
    return rows


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


def baseline_diff(summary: EvalSummary, baseline: EvalSummary, baseline_variant: int) -> list[dict[str, Any]]:
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
