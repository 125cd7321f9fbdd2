"""The prompt arm given the data: k-shot evals with and without shared-prefix reuse, against a zero-shot eval
of the same items, on the demo model and the ~110M Llama config; and the optimizer's own overhead (graded
generations per second during `optimize` against plain evals of the same candidates on the same engine).
Every pair alternates its two sides (ABBA) in one process, on every core, with the eval cache off."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import REPEATS, Result, alternated, seconds

TEMPLATE = "{{text}} Overall, this review is"
SHOTS, ITEMS, BIG_ITEMS = 8, 64, 16


def _evals(model: str, n: int):
    """Three callables over the same `n` eval items: 8-shot with reuse, 8-shot without, 0-shot."""
    import torch

    import core.engine.generation as generation
    from core.data.prompts import PromptVersion
    from core.data.shots import Shots
    from core.engine.engines import HostEngine
    from core.engine.options import ModelOptions
    from core.evals.plan import EvalRequest, Variant
    from core.evals.runner import run_eval

    torch.set_num_threads(os.cpu_count() or 1)
    engine = HostEngine(ModelOptions(model))
    root = Path(tempfile.mkdtemp())
    request = EvalRequest("demo", "eval", grader="labels", limit=n, use_cache=False)
    params = {"max_new_tokens": 4}
    shot = Variant("p", PromptVersion(TEMPLATE, mode="raw", params=params, shots=Shots(SHOTS, seed=1)), model)
    zero = Variant("p", PromptVersion(TEMPLATE, mode="raw", params=params), model)

    def plain() -> None:
        floor, generation.PREFIX_MIN = generation.PREFIX_MIN, 10**9
        try:
            run_eval(root, request, [shot], engine)
        finally:
            generation.PREFIX_MIN = floor

    return (lambda: run_eval(root, request, [shot], engine)), plain, (lambda: run_eval(root, request, [zero], engine))


def prefix_rows(model: str = "demo", n: int = ITEMS, repeats: int = REPEATS, tag: str = "") -> list[Result]:
    reuse, plain, zero = _evals(model, n)
    plain_s, reuse_s = alternated(seconds(plain), seconds(reuse), repeats)
    zero_s, reuse2_s = alternated(seconds(zero), seconds(reuse), repeats)
    note = f"{n} demo eval items, {SHOTS} random demonstrations, 4 new tokens, greedy, {os.cpu_count()} threads{tag}"
    return [
        Result.paired(
            f"{SHOTS}-shot eval with prefix reuse vs without{tag}",
            reuse_s,
            plain_s,
            "s",
            "<= 0.5x",
            lambda r: r <= 0.5,
            note,
        ),
        Result.paired(
            f"{SHOTS}-shot eval with reuse vs 0-shot{tag}", reuse2_s, zero_s, "s", "<= 1.5x", lambda r: r <= 1.5, note
        ),
    ]


def optimizer_row(repeats: int = REPEATS) -> Result:
    """Graded generations per second: `optimize` (its rounds, bookkeeping, stored versions and history) against
    the same evals run plainly, round by round (each round's survivors on its items, the final pair on every
    dev row), each side in a fresh store with the eval cache on, as `optimize` runs: the same generations."""
    from core.data.prompts import PromptVersion
    from core.engine.engines import HostEngine
    from core.engine.options import ModelOptions
    from core.evals.plan import EvalRequest, Variant
    from core.evals.runner import run_eval
    from core.optimize.search import Search
    from core.workbench.optimizing import optimize
    from core.workbench.service import Workbench

    engine = HostEngine(ModelOptions("demo"))
    start = PromptVersion(TEMPLATE, mode="raw", params={"max_new_tokens": 4})
    request = EvalRequest("demo", "eval", grader="labels", limit=32)
    rounds: list[tuple[list[PromptVersion], int]] = []
    calls = [0]

    def scored(search: Search) -> None:
        most = max(len(s.scores) for s in search.scored.values())
        rounds.append(([s.candidate.version for s in search.scored.values() if len(s.scores) == most], most))

    def ours() -> float:
        rounds.clear()
        began = time.perf_counter()
        found = optimize(Workbench(Path(tempfile.mkdtemp())), "p", start, request, engine, budget=300, on_round=scored)
        elapsed = time.perf_counter() - began
        final = [found.search.scored[v].candidate.version for v in found.search.finalists]
        rounds.append((final, 32))
        calls[0] = found.search.calls
        return found.search.calls / elapsed

    def plain() -> float:  # `alternated` warms `ours` up first: the rounds to replay are there
        root, replay = Path(tempfile.mkdtemp()), list(rounds)
        began = time.perf_counter()
        for versions, n in replay:
            run_eval(root, replace(request, limit=n), [Variant("p", v) for v in versions], engine)
        return calls[0] / (time.perf_counter() - began)

    optimized, evaluated = alternated(ours, plain, repeats)
    return Result.paired(
        "optimize graded generations/s vs plain evals",
        optimized,
        evaluated,
        "calls/s",
        ">= 0.9x",
        lambda r: r >= 0.9,
        "demo model, 32 dev items, budget 300: the search against its own rounds replayed as plain evals",
    )


def run() -> list[Result]:
    rows = prefix_rows()
    with tempfile.TemporaryDirectory() as folder:
        from bench.cost_growth import big_model_folder

        big = str(big_model_folder(Path(folder) / "llama-110m"))
        rows += prefix_rows(big, BIG_ITEMS, repeats=3, tag=", 110M")
    return [*rows, optimizer_row()]
