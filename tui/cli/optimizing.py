"""`tunelab optimize`: the prompt arm searched on the dev rows, and the result judged honestly."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from core.errors import TunelabError
from core.optimize.candidates import parse_strategies
from core.training.config import DATASET_HELP, FRACTION_HELP, HOLDOUT_HELP
from tui.cli.evaluating import _eval_request, grader_help
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import progress, say, table

if TYPE_CHECKING:
    from core.workbench.service import Workbench


def add_optimize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", metavar="P", help="the starting prompt: a prompt file (.toml) or a saved version")
    p.add_argument("--dataset", default="demo", help=DATASET_HELP)
    p.add_argument("--split", default="auto", help="the dev rows searched on: auto (the eval split), a name, or all")
    p.add_argument("--eval-fraction", type=float, default=0.1, help=FRACTION_HELP)
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION", help=HOLDOUT_HELP)
    p.add_argument("--expected", default=None, help="field holding the expected answer")
    p.add_argument("--map", action="append", default=[], metavar="VAR=FIELD", help="template variable from a field")
    p.add_argument("--grader", default="labels", help=grader_help())
    p.add_argument("--limit", type=int, default=None, help="only the first N dev rows")
    p.add_argument("--budget", type=int, default=400, metavar="CALLS", help="graded generations the search may spend")
    p.add_argument(
        "--strategies",
        default="shots,instructions",
        help="shots (k demonstrations by each selection rule), instructions (rewrites of the instruction), "
        "reflect (a proposer reads failures and rewrites; needs --proposer); comma-separated",
    )
    p.add_argument(
        "--proposer",
        default=None,
        metavar="MODEL",
        help="the model that writes instructions (URL#MODEL, endpoint:NAME or a local one); without one, "
        "built-in instruction variants (offline)",
    )
    p.add_argument("--seed", type=int, default=0, help="the random demonstrations' seeds start here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the last optimize (its arguments and start; what it scored comes from the eval cache)",
    )
    p.set_defaults(repeat=1, no_cache=False, truncate="left", skip_unrenderable=False, judge=None, min_pass=None)
    p.set_defaults(report_to=None, report_dir=None)  # eval's flags this command does not take


# What `--resume` takes from the last optimize (the model options included): everything that names the search.
RESUMED = (
    "prompt", "dataset", "split", "eval_fraction", "holdout", "expected", "map", "grader", "limit", "budget",
    "strategies", "proposer", "seed", "models", "adapters", "dtype", "device", "allow_pickle", "trust_remote_code",
)  # fmt: skip


def run_optimize(args: argparse.Namespace) -> int:
    from core.engine.engines import HostEngine
    from core.workbench.optimizing import last_arguments, optimize, remember

    workbench = _workbench()
    if args.resume:
        kept = last_arguments(workbench)
        for key in RESUMED:
            if key in kept:
                setattr(args, key, kept[key])
        say(f"resuming the last optimize of {args.prompt} (items it scored come from the eval cache)")
    elif not args.prompt:
        raise TunelabError("{0} is required (or {1} to go on with the last optimize)", "prompt", "resume")
    strategies = parse_strategies(args.strategies)
    if "reflect" in strategies and not args.proposer:
        raise TunelabError("{0} reflect needs a {1} (the model that reads the failures)", "strategies", "proposer")
    options, _, _ = model_options(args)
    request, _ = _eval_request(args)
    ref = workbench.prompt_ref(args.prompt)
    start = args.prompt if ref.new else ref.version.id  # the search saves its best under the name: keep the id
    remember(workbench, {key: getattr(args, key) for key in RESUMED if hasattr(args, key)} | {"prompt": start})
    with progress("optimize") as update:
        result = optimize(
            workbench, ref.name, ref.version, request, HostEngine(options), budget=args.budget,
            strategies=strategies, proposer=args.proposer, seed=args.seed, model=options.model,
            on_round=lambda search: update(search.calls, args.budget),
        )  # fmt: skip
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    rows = [[s["kind"], s["change"], f"{s['rate']:.1%}", str(s["items"])] for s in result.to_dict()["table"]]
    table(["kind", "what changed", "dev pass", "items"], rows)
    start, best = result.rate(result.start), result.rate(result.best)
    print(f"start: {ref.name}@{result.start.id[:6]} {_rate(*start)}")
    print(f"best:  {ref.name}@{result.best.id[:6]} {_rate(*best)} ({result.best_change}), saved as {ref.name}")
    if result.diff:
        print(result.diff.rstrip("\n"))
    if result.verdict is not None:
        print(result.verdict.sentence)
        print(f"(after {result.tried} candidates tried on these items: the p-value is adjusted for keeping the best)")
    else:
        print("The start is the best found: no candidate beat it on the dev rows.")
    stopped = f"; {result.search.stopped}" if result.search.stopped else ""
    reused = result.search.calls - result.generated
    cached = f" ({reused} from the eval cache)" if reused > 0 else ""
    say(
        f"spent: {result.search.calls} graded generations{cached} in {result.elapsed_s:.0f} s, "
        f"{len(result.search.scored)} candidates{stopped}"
    )
    clean = f"tunelab compare --final --prompt {ref.name}@{result.best.id[:8]} --dataset {args.dataset}"
    if result.sealed:
        print(f"the clean answer, on rows nothing was tuned on: {clean}")
    else:
        print(
            f"the dataset has no sealed test split: the clean answer needs one ({clean} --holdout 0.2 seals 20% "
            "of the eval rows, stored and applied from then on; rows already tuned on stay dev)"
        )
    return 0


def _rate(rate: float, ci: list[float]) -> str:
    return f"{rate:.1%} [{ci[0] * 100:.0f}-{ci[1] * 100:.0f}] on the dev rows"


def optimized(args: argparse.Namespace, workbench: Workbench, request: Any, refs: list[Any], engine: Any) -> list[Any]:
    """`compare --optimize`: the first prompt searched on the dev rows; the best found, when it is not the
    start, as one more prompt of the comparison (`NAME-opt`)."""
    from core.workbench.optimizing import optimize
    from core.workbench.service import PromptRef

    if not refs:
        raise TunelabError("{0} needs a {1} to start the search from", "optimize", "prompt")
    with progress("optimize") as update:
        found = optimize(
            workbench, refs[0].name, refs[0].version, request, engine, budget=args.optimize,
            model=(getattr(args, "models", None) or ["demo"])[0], on_round=lambda search: update(search.calls, args.optimize),
        )  # fmt: skip
    say(f"optimize: {len(found.search.scored)} candidates, {found.search.calls} calls; best: {found.best_change}")
    if found.best.id == refs[0].version.id:
        say("optimize: the start is the best found; no optimized column")
        return []
    return [PromptRef(f"{refs[0].name}-opt", found.best, new=True)]
