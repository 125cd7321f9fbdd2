"""An eval's summary from its graded rows: per variant the pass rate, its interval over items, latency
and tokens; per item its pass fraction over repeats, majority output and expected answer."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from core.evals.stats import interval
from core.history.store import now_iso
from core.storage.schemas import EvalSummary, GradedRow


def summarize(
    run_id, request, dataset_name, dataset_sha, variants, items, rows: Iterable[GradedRow], status
) -> EvalSummary:
    by_variant: dict[int, list[GradedRow]] = defaultdict(list)
    for graded in rows:
        by_variant[graded.variant].append(graded)
    out_variants, per_item = [], {}
    for vi, v in enumerate(variants):
        vrows = by_variant.get(vi, [])
        passed = sum(graded.passed for graded in vrows)
        per_item[str(vi)] = _per_item(vrows)
        # the item is the unit: repeats of one item are not more items (a bootstrap over item fractions)
        lo, hi = interval([agg["pass"] for agg in per_item[str(vi)].values()])
        latencies = [graded.latency_s for graded in vrows if graded.latency_s is not None and not graded.cached]
        tokens = [graded.completion_tokens for graded in vrows if graded.completion_tokens is not None]
        prompt_tokens = [graded.prompt_tokens for graded in vrows if graded.prompt_tokens is not None]
        out_variants.append(
            {
                "label": v.label,
                "prompt_name": v.name if v.version else None,
                "prompt_id": v.version.id if v.version else None,
                "template": v.version.template if v.version else None,
                "mode": v.version.mode if v.version else None,
                **({"shots": v.version.shots_label} if v.version and v.version.demonstrates else {}),
                "model": v.model,
                "adapter": v.adapter,
                "trials": len(vrows),
                "passed": passed,
                "pass_rate": passed / len(vrows) if vrows else 0.0,
                "ci": [round(lo, 4), round(hi, 4)],
                "mean_latency_s": round(statistics.fmean(latencies), 4) if latencies else None,
                "mean_completion_tokens": round(statistics.fmean(tokens), 2) if tokens else None,
                "mean_prompt_tokens": round(statistics.fmean(prompt_tokens), 2) if prompt_tokens else None,
                "cached": sum(graded.cached for graded in vrows),
                "truncated": sum(graded.truncated for graded in vrows),  # prompts cut to fit the context
            }
        )
    summary = {
        "id": run_id,
        "created_at": now_iso(),
        "status": status,
        "dataset": dataset_name,
        "dataset_sha256": dataset_sha,
        "split": request.split,
        "grader": request.grader,
        "repeat": request.repeat,
        "request": asdict(request),  # all it takes to run it again (or resume it after a cancel)
        "n_items": len(items),
        "variants": out_variants,
        "items": per_item,
    }
    return EvalSummary.model_validate(summary)


def _per_item(rows: list[GradedRow]) -> dict[str, dict[str, Any]]:
    """Repeats of one item folded: pass fraction, majority output, number of distinct outputs."""
    grouped: dict[str, list[GradedRow]] = defaultdict(list)
    for graded in rows:
        grouped[graded.item].append(graded)
    out = {}
    for item_id, reps in grouped.items():
        outputs = Counter(graded.output for graded in reps)
        fraction = sum(graded.passed for graded in reps) / len(reps)
        out[item_id] = {
            "pass": round(fraction, 4),
            "passed": fraction >= 0.5,
            "majority": outputs.most_common(1)[0][0],
            "distinct": len(outputs),
            "expected": reps[0].expected,
        }
    return out
