"""`compare --both-together` (p->w->p) and `compare --distill PROMPT`: the comparison with the rows they add
(`core.workbench.together`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tui.cli.output import say

if TYPE_CHECKING:
    from core.engine.engines import Engine
    from core.evals.plan import EvalRequest
    from core.workbench.compare import ComparePlan, CompareWatcher
    from core.workbench.service import Workbench
    from core.workbench.verdicts import Comparison


def add_together(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--both-together",
        action="store_true",
        help="p->w->p: optimize the (first) --prompt on the dev rows, train a LoRA with it on its passing outputs "
        "on the training rows, optimize the prompt again on that LoRA; rows p->w and p->w->p join the verdict "
        "(--optimize BUDGET: each search's budget, default 400)",
    )
    p.add_argument(
        "--distill",
        default=None,
        metavar="PROMPT",
        help="train a LoRA on PROMPT's passing outputs on the training rows, from the input alone, and grade it "
        "with no prompt beside PROMPT: the tokens per call it saves and after how many calls it pays back",
    )
    p.add_argument(
        "--trace-rows",
        type=int,
        default=None,
        metavar="N",
        help="with --both-together or --distill: run the prompt on the first N training rows only (default: all)",
    )


def compare_with(
    args: argparse.Namespace,
    workbench: Workbench,
    plan: ComparePlan,
    request: EvalRequest,
    engine: Engine,
    watcher: CompareWatcher,
    stack: Any,
) -> Comparison:
    """The plan's comparison, with the p->w->p and distilled rows when asked (each step said once it ends)."""
    from core.errors import TunelabError

    if not (args.both_together or args.distill):
        if args.trace_rows is not None:
            raise TunelabError("{0} goes with {1} or {2}", "trace_rows", "both_together", "distill")
        return workbench.compare(plan, engine, watcher)
    from core.workbench.together import BUDGET, Steps, compare_together

    if args.trace_rows is not None and args.trace_rows < 1:
        raise TunelabError(f"{{0}} must be at least 1, got {args.trace_rows}", "trace_rows")
    distill = workbench.prompt_ref(args.distill) if args.distill else None
    settings = {"epochs": args.train_epochs, "report_to": args.report_to, "report_dir": args.report_dir}
    steps = Steps(request, args.optimize or BUDGET, settings, args.trace_rows, watcher)
    done = compare_together(workbench, plan, engine, steps, both=args.both_together, distill=distill)
    stack.close()  # the progress bars end before the steps are said
    for line in done.lines:
        say(line)
    return done.comparison
