"""`optimize`: search the prompt arm on the dev rows, and judge the result honestly.

Candidates come from the strategies (`core.optimize.candidates`), the search is successive halving
(`core.optimize.search`), and every scoring is an eval of the workbench (`run_eval`): each candidate is a
stored prompt version and each round an eval in history, so the verdict's "versions tried" counts them
without being told. The answer is the best version (saved), its diff against the start, both dev pass rates
with intervals, the paired test of the two adjusted for every candidate tried on those items, what the search
spent, and the command that gives the clean answer on rows nothing was tuned on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.data.prompts import PromptVersion
from core.engine.engines import Engine, engine_for
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.errors import TunelabError
from core.evals.grid import build_grid
from core.evals.plan import EvalRequest, Variant, sealed_request
from core.evals.verdict import Verdict, verdict
from core.optimize.candidates import (
    Candidate,
    instruction_candidates,
    reflect_candidates,
    shot_candidates,
)
from core.optimize.search import Search, halving
from core.storage.atomic import write_atomic
from core.storage.schemas import EvalSummary

if TYPE_CHECKING:
    from core.workbench.service import Workbench

MIN_BUDGET = 50
RESUME_FILE = "optimize-last.json"  # the last search's arguments, for `optimize --resume`


@dataclass
class Optimized:
    name: str
    start: PromptVersion
    best: PromptVersion
    best_change: str
    search: Search
    final: EvalSummary  # the start and the finalists on every dev row
    verdict: Verdict | None  # best against the start, adjusted for every candidate tried on these items
    tried: int
    elapsed_s: float
    diff: str
    sealed: bool  # the dataset has a sealed test split for the clean answer
    generated: int = 0  # generations run, not answered by the eval cache (a resumed search's are)

    def rate(self, version: PromptVersion) -> tuple[float, list[float]]:
        """A version's dev pass rate and its 95% interval, from the final eval."""
        v = next(v for v in self.final.variants if v.prompt_id == version.id)
        return v.pass_rate, list(v.ci)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": self.start.id,
            "best": self.best.id,
            "best_change": self.best_change,
            "start_rate": self.rate(self.start),
            "best_rate": self.rate(self.best),
            "candidates": len(self.search.scored),
            "tried": self.tried,
            "calls": self.search.calls,
            "generated": self.generated,
            "elapsed_s": round(self.elapsed_s, 2),
            "stopped": self.search.stopped,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "final_eval": self.final.id,
            "table": [
                {
                    "kind": s.candidate.kind,
                    "change": s.candidate.change,
                    "id": vid,
                    "rate": round(s.rate, 4),
                    "items": len(s.scores),
                }
                for vid, s in self.search.scored.items()
            ],
        }


def optimize(
    workbench: Workbench,
    name: str,
    start: PromptVersion,
    request: EvalRequest,
    engine: Engine,
    *,
    budget: int = 400,
    strategies: tuple[str, ...] = ("shots", "instructions"),
    proposer: str | None = None,
    seed: int = 0,
    model: str = "demo",
    adapter: str | None = None,
    cancel: threading.Event | None = None,
    on_round: Callable[[Search], object] = lambda search: None,
) -> Optimized:
    """Search `start`'s prompt arm on the request's dev rows within `budget` graded generations, on `model`
    (with `adapter`: the prompt for that LoRA). Every round's eval is tagged `optimize` in history, the last
    one noted with what the search found."""
    if budget < MIN_BUDGET:
        raise TunelabError(f"{{0}} must be at least {MIN_BUDGET} graded generations, got {budget}", "budget")
    cancel = cancel or threading.Event()
    began = time.monotonic()
    request = sealed_request(workbench.root, request)
    dataset = request.load_data()
    dev = dataset.split(request.split)[: request.limit]
    train = dataset.split("train") if "train" in dataset.splits else []
    if not dev:
        raise TunelabError(f"dataset {dataset.name} has no dev rows in split '{request.split}'")
    ask = _proposer(proposer, request, engine, cancel)
    bare = Candidate(start, "start", "the starting prompt")
    candidates: list[Candidate] = []
    if "shots" in strategies and train:
        candidates += shot_candidates(start, len(train), seed)
    if "instructions" in strategies:
        candidates += instruction_candidates(start, train, ask)
    scorer = _EvalScorer(workbench, name, request, engine, model, adapter, [it.id for it in dev], cancel)
    if "reflect" in strategies and ask is not None:
        failures = _failures(workbench, scorer, bare, dev)
        candidates += reflect_candidates(start, failures, ask)
    search = halving(bare, candidates, scorer, len(dev), budget, cancel.is_set, on_round)
    best = search.best
    final = scorer.last
    if final is None:
        raise TunelabError("optimize was cancelled before it scored anything")
    tried = workbench.verdicts.tried_on(final)
    labels = [Variant(name, v, model, adapter).label for v in (best.candidate.version, start)]
    judged = None
    if best.candidate.version.id != start.id and final.done:
        judged = verdict(final, build_grid(final), tried.count, registered=labels)
    workbench.prompts.save(name, best.candidate.version)
    found = f"best {name}@{best.candidate.version.id[:6]} ({best.candidate.change})"
    on = f" on {adapter}" if adapter else ""
    _mark_in_history(workbench, scorer.runs, f"optimize {name} from {name}@{start.id[:6]}{on}", found, search)
    diff = "".join(_diff(start, best.candidate.version))
    return Optimized(
        name, start, best.candidate.version, best.candidate.change, search, final, judged, tried.count,
        time.monotonic() - began, diff, dataset.sealed, scorer.generated,
    )  # fmt: skip


class _EvalScorer:
    """Scores candidates as one eval per round (every candidate a variant), on the first n dev items."""

    def __init__(
        self,
        workbench: Workbench,
        name: str,
        request: EvalRequest,
        engine: Engine,
        model: str,
        adapter: str | None,
        ids: list[str],
        cancel: threading.Event,
    ) -> None:
        from core.workbench.service import PromptRef

        self.workbench, self.name, self.request, self.engine, self.ids, self.cancel = (
            workbench,
            name,
            request,
            engine,
            ids,
            cancel,
        )
        self.model, self.adapter = model, adapter
        self.ref = PromptRef
        self.last: EvalSummary | None = None
        self.runs: list[str] = []  # every round's eval, in order
        self.generated = 0  # generations run, not answered by the eval cache (a resumed search's are)

    def __call__(self, candidates: list[Candidate], n_items: int) -> dict[str, list[float]]:
        versions = list({c.version.id: c.version for c in candidates}.values())
        summary = self.workbench.run_eval(
            replace(self.request, limit=n_items),
            [Variant(self.name, v, self.model, self.adapter) for v in versions],
            self.engine,
            new_prompts=[self.ref(self.name, v, new=True) for v in versions],
            cancel=self.cancel,
        )
        self.last = summary
        self.runs.append(summary.id)
        self.generated += sum(v.trials - v.cached for v in summary.variants)
        out = {}
        for vi, v in enumerate(versions):
            scores = summary.scores(vi)
            out[v.id] = [scores[i].fraction if i in scores else 0.0 for i in self.ids[:n_items]]
        return out


def remember(workbench: Workbench, arguments: dict[str, Any]) -> None:
    """Keep a search's arguments (its start named by version id, which the search itself moves on) so that
    `--resume` runs the same search again: every item already scored comes from the eval cache."""
    write_atomic(workbench.root / RESUME_FILE, json.dumps(arguments, ensure_ascii=False, sort_keys=True))


def last_arguments(workbench: Workbench) -> dict[str, Any]:
    """The arguments `remember` kept, or a one-line error when there is no search to go on with."""
    path = workbench.root / RESUME_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunelabError("no optimize to resume: start one with `tunelab optimize --prompt P`") from None
    except (OSError, ValueError) as e:
        raise TunelabError(f"{path}: cannot be read as the last optimize's arguments ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise TunelabError(f"{path}: field 'prompt' is missing (not an optimize's arguments)")
    return data


def _mark_in_history(workbench: Workbench, runs: list[str], what: str, found: str, search: Search) -> None:
    """Each round's eval tagged `optimize` in history (`tag:optimize` lists them), each noted as a round of
    this search and the last with what it found; history that cannot be written loses the tags, nothing else."""
    from core.history.query import HistoryQuery

    wanted, records = set(runs), {}
    try:
        for n, record in enumerate(workbench.history.iter_matching(HistoryQuery(kind="eval"))):
            if record.get("ref") in wanted:
                records[record["ref"]] = record["id"]
            if len(records) == len(wanted) or n > 200:  # the rounds' evals are the newest ones
                break
        for i, run in enumerate(runs, 1):
            if run in records:
                note = f"{what}: round {i} of {len(runs)}"
                if i == len(runs):
                    note += f", the last; {found} of {len(search.scored)} candidates in {search.calls} calls"
                workbench.history.update(records[run], add_tags=["optimize"], note=note)
    except (OSError, TunelabError):
        pass


def _failures(workbench: Workbench, scorer: _EvalScorer, start: Candidate, dev: list[Any]) -> list[str]:
    """The start's failing items on a first minibatch, each as its input, the expected and the given answer."""
    scorer([start], min(len(dev), 16))
    summary = scorer.last
    assert summary is not None
    out = []
    for item in dev[: summary.n_items]:
        score = summary.scores(0).get(item.id)
        if score is not None and not score.passed:
            shown = " ".join(" ".join(item.vars.values()).split())[:300]
            out.append(
                f"- input: {shown} | expected: {score.expected} | given: {' '.join(score.majority.split())[:120]}"
            )
    return out


def _proposer(
    model: str | None, request: EvalRequest, local: Engine, cancel: threading.Event
) -> Callable[[str], str] | None:
    """The proposer model as a function: any model tunelab runs (a served endpoint, or a local one)."""
    if model is None:
        return None

    def ask(text: str) -> str:
        engine = engine_for(model, local)
        params = GenParams(max_new_tokens=160, temperature=0.7, seed=0)
        return engine.generate(model, None, Prompt(text, "", "chat"), params, None, cancel).output

    return ask


def _diff(a: PromptVersion, b: PromptVersion) -> list[str]:
    import difflib

    return list(difflib.unified_diff(a.as_text().splitlines(True), b.as_text().splitlines(True), "start", "best"))
