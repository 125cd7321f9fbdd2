"""`compare --parity`: the same model served and in-process on the same items, greedy and uncached, item
by item, so chat-template or quantisation drift between the two is seen before it is blamed on a prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.engine.engines import is_local
from core.errors import TunelabError
from core.evals.plan import NO_PROMPT, EvalRequest
from core.evals.stored import graded_rows
from core.storage.schemas import EvalSummary, GradedRow

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


def why(local: GradedRow, served: GradedRow) -> str:
    """The likeliest cause a row pair shows: a prompt rendered to other tokens (template drift), an answer
    cut at another length, or the same input decoded differently (numerics, quantisation, a seedless sampler)."""
    mine, theirs = local.prompt_tokens, served.prompt_tokens
    if mine is not None and theirs is not None and mine != theirs:
        return f"the prompt is {mine} tokens here and {theirs} served: the server renders it differently (chat template or special tokens)"
    if local.truncated != served.truncated:
        return "one side cut the prompt to fit its context"
    here, there = local.output, served.output
    if here.startswith(there) or there.startswith(here):
        return "one answer stops earlier (a stop string or end-of-text the other side did not honour)"
    return "the same prompt length, decoded differently (dtype, quantisation or kernels)"


def compare_rows(summary: EvalSummary, rows: list[GradedRow], local: str, served: str) -> Parity:
    """Pairs the local and the served row of each (prompt, item, repeat) and keeps those that differ."""
    variants = summary.variants
    prompt = {i: v.prompt_id or NO_PROMPT for i, v in enumerate(variants)}
    label = {i: v.label.split(" | ")[0] for i, v in enumerate(variants)}
    pairs: dict[tuple[str, str, int], tuple[GradedRow | None, GradedRow | None]] = {}  # (local, served)
    labels: dict[tuple[str, str, int], str] = {}
    for graded in rows:
        if graded.variant not in prompt:
            continue
        key = (prompt[graded.variant], graded.item, graded.repeat)
        here, there = pairs.get(key, (None, None))
        pairs[key] = (graded, there) if variants[graded.variant].model == local else (here, graded)
        labels[key] = label[graded.variant]
    both = {k: (here, there) for k, (here, there) in pairs.items() if here is not None and there is not None}
    differing = [k for k, (here, there) in both.items() if here.output != there.output]
    drifts = [
        Drift(labels[k], k[1], both[k][0].output, both[k][1].output, why(*both[k])) for k in differing[:MAX_SHOWN]
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
    return compare_rows(summary, graded_rows(workbench.root / "evals" / summary.id), local, served)
