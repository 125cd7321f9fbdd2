"""`compare --parity`: the same model served and in-process on the same items, greedy and uncached, item
by item, so chat-template or quantisation drift between the two is seen before it is blamed on a prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.engine.engines import is_local
from core.errors import TunelabError
from core.evals.plan import NO_PROMPT, EvalRequest
from core.history.io import eval_rows
from core.storage.schemas import EvalSummary

if TYPE_CHECKING:
    from core.engine.engines import Engine
    from core.workbench.service import PromptRef, Workbench

MAX_SHOWN = 200  # differences kept for the report; the count is always whole


@dataclass(frozen=True)
class Drift:
    """One item whose greedy output differs between the two, and what the rows say about why."""

    prompt: str  # the prompt's label ("no prompt", or name@version)
    item: str
    local: str
    served: str
    why: str


@dataclass(frozen=True)
class Parity:
    summary: EvalSummary  # the eval both ran in (stored, as every eval is)
    compared: int  # (prompt, item) pairs with an answer on both sides
    drifts: list[Drift]
    differing: int  # all of them (drifts holds at most MAX_SHOWN)


def parity_models(models: list[str]) -> tuple[str, str]:
    """The local and the served model of a parity check: exactly one of each."""
    local = [m for m in models if is_local(m)]
    served = [m for m in models if not is_local(m)]
    if len(local) != 1 or len(served) != 1:
        raise TunelabError(
            "{0} takes two {1}: the local model and the same model served (URL#MODEL or endpoint:NAME)",
            "parity",
            "model",
        )
    return local[0], served[0]


def greedy_only(versions: list[Any]) -> None:
    for version in versions:
        if version is not None and version.gen_params.temperature > 0:
            raise TunelabError(
                f"parity compares greedy outputs: this prompt samples (temperature {version.gen_params.temperature:g})"
            )


def why(local: dict[str, Any], served: dict[str, Any]) -> str:
    """The likeliest cause a row pair shows: a prompt rendered to other tokens (template drift), an answer
    cut at another length, or the same input decoded differently (numerics, quantisation, a seedless sampler)."""
    mine, theirs = local.get("prompt_tokens"), served.get("prompt_tokens")
    if isinstance(mine, int) and isinstance(theirs, int) and mine != theirs:
        return f"the prompt is {mine} tokens here and {theirs} served: the server renders it differently (chat template or special tokens)"
    if local.get("truncated") != served.get("truncated"):
        return "one side cut the prompt to fit its context"
    here, there = str(local.get("output", "")), str(served.get("output", ""))
    if here.startswith(there) or there.startswith(here):
        return "one answer stops earlier (a stop string or end-of-text the other side did not honour)"
    return "the same prompt length, decoded differently (dtype, quantisation or kernels)"


def compare_rows(summary: EvalSummary, rows: list[dict[str, Any]], local: str, served: str) -> Parity:
    """Pairs the local and the served row of each (prompt, item, repeat) and keeps those that differ."""
    variants = summary.variants
    side = {i: ("local" if v.model == local else "served") for i, v in enumerate(variants)}
    prompt = {i: v.prompt_id or NO_PROMPT for i, v in enumerate(variants)}
    label = {i: v.label.split(" | ")[0] for i, v in enumerate(variants)}
    pairs: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    labels: dict[tuple[str, str, int], str] = {}
    for row in rows:
        index = row.get("variant")
        if index not in side:
            continue
        key = (prompt[index], str(row["item"]), int(row.get("repeat") or 0))
        pairs.setdefault(key, {})[side[index]] = row
        labels[key] = label[index]
    both = {k: v for k, v in pairs.items() if len(v) == 2}
    differing = [k for k, v in both.items() if v["local"].get("output") != v["served"].get("output")]
    drifts = [
        Drift(
            labels[k],
            k[1],
            str(both[k]["local"]["output"]),
            str(both[k]["served"]["output"]),
            why(both[k]["local"], both[k]["served"]),
        )
        for k in differing[:MAX_SHOWN]
    ]
    return Parity(summary, len(both), drifts, len(differing))


def run_parity(
    workbench: Workbench,
    request: EvalRequest,
    models: list[str],
    prompts: list[PromptRef],
    engine: Engine,
    on_progress: Callable[[int, int], object] | None = None,
) -> Parity:
    """One eval of both models with no prompt and each prompt, fresh (no cache: a served answer cached
    earlier says nothing of the server now), then the item-by-item comparison."""
    local, served = parity_models(models)
    greedy_only([ref.version for ref in prompts])
    variants = workbench.variants([None, *prompts], [None], [local, served])
    summary = workbench.run_eval(
        replace(request, use_cache=False, repeat=1), variants, engine, new_prompts=prompts, on_progress=on_progress
    )
    return compare_rows(summary, list(eval_rows(workbench.root, summary)), local, served)
