"""Evals whose process died before writing the summary (a killed TUI, a power cut, kill -9): the folder holds
the plan and the rows that finished, so it is summarized as `interrupted`, listed and resumable, never lost."""

from __future__ import annotations

from pathlib import Path

from core.data.prompts import PromptVersion
from core.errors import TunelabError
from core.evals.plan import EvalRequest, Variant
from core.evals.stored import PLAN_FILE, SUMMARY_FILE, WRITER_LOCK, graded_rows, store
from core.evals.summary import summarize
from core.storage.atomic import lock_held
from core.storage.runfolders import read_json
from core.storage.schemas import EvalPlan, EvalSummary, parsed

GONE = "the eval's process ended before it finished; recovered with what it had graded"


def _summary(folder: Path, plan: EvalPlan) -> EvalSummary:
    variants = [
        Variant(v.name, PromptVersion(**v.version) if v.version else None, v.model or "demo", v.adapter)
        for v in plan.variants
    ]
    request = EvalRequest(**plan.request)
    rows = [graded for graded in graded_rows(folder) if 0 <= graded.variant < len(variants)]
    summary = summarize(
        folder.name, request, plan.dataset, plan.dataset_sha256, variants, [None] * plan.n_items, rows, "interrupted"
    )
    summary.error = GONE
    return summary


def recover_evals(root: Path) -> list[str]:
    """Summarize every eval folder left without a summary by a process that is gone; returns their ids. A folder
    still being written, or without a readable plan (from before plans, or damaged), is left as it is."""
    base = Path(root) / "evals"
    recovered: list[str] = []
    if not base.is_dir():
        return recovered
    for folder in sorted(base.iterdir()):
        if folder.is_symlink() or not folder.is_dir() or (folder / SUMMARY_FILE).exists():
            continue
        plan, _ = parsed(EvalPlan, read_json(folder / PLAN_FILE))
        if plan is None or lock_held(folder / WRITER_LOCK):
            continue
        try:
            summary = _summary(folder, plan)
        except (KeyError, TypeError, ValueError, TunelabError):
            continue
        store(root, folder, summary)
        recovered.append(folder.name)
    return recovered
