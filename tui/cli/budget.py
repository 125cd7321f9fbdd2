"""`compare --budget 16,64,256,all --train`: the data-budget curve (core/workbench/budget.py), shown as a table
with a row per size, a text chart on a log axis, and the sentence that says where the LoRA overtakes prompting."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from core.errors import TunelabError
from core.training.config import TrainConfig
from core.workbench.budget import BudgetWatcher, budget_plan, run_budget
from core.workbench.compare import DEMO_PROMPT, DEMO_PROMPT_NAME
from tui.cli.evaluating import _CompareBars, _eval_request
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import say, table

if TYPE_CHECKING:
    from core.evals.budget_curve import Curve

# compare's flags that ask for something a curve does not do: refused in one line rather than ignored
NOT_WITH_BUDGET = (
    "train_with_prompt", "optimize", "final", "plan", "parity", "no_prompt", "pin", "baseline", "min_pass",
    "junit", "summary", "report",
)  # fmt: skip


class _BudgetBars(_CompareBars, BudgetWatcher):
    """compare's bars, each named by the size it is for."""

    size = 0

    def stage(self, what: str, size: int) -> None:
        self.size = size
        if what != "train":
            self.phase(f"{size} rows: {'prompt candidates' if what == 'prompts' else 'the three arms'}")

    def training(self, config: TrainConfig, index: int, total: int) -> None:
        self.phase(f"{self.size} rows: train" + (f" (seed {config.seed})" if self.seeds > 1 else ""))

    def evaluating(self, labels: list[str]) -> None:
        """The stage's bar is up already (`stage`)."""


def run_budget_curve(args: argparse.Namespace) -> int:
    from core.engine.engines import HostEngine
    from core.workbench.service import PromptRef

    if not args.train:
        raise TunelabError("{0} needs {1}: each size's LoRA is trained on that size's rows", "budget", "train")
    for name in NOT_WITH_BUDGET:
        if getattr(args, name, None) not in (None, False, []):
            raise TunelabError("{0} does not take {1} (a curve is its own comparison)", "budget", name)
    if len(args.prompt) > 1:
        raise TunelabError("{0} takes one {1}: its k-shot candidates are drawn at each size", "budget", "prompt")
    options, models, adapters = model_options(args, several_models=True, several_adapters=True)
    if adapters or len(models) > 1:
        raise TunelabError(
            "{0} trains its own LoRAs on one model: give no {1} and one {2}", "budget", "adapter", "model"
        )
    workbench = _workbench()
    request, _ = _eval_request(args)
    if args.prompt:
        prompt = workbench.prompt_ref(args.prompt[0])
    elif args.dataset == "demo":
        prompt = PromptRef(DEMO_PROMPT_NAME, DEMO_PROMPT, new=True)
    else:
        raise TunelabError(
            "{0} needs a {1} to draw its k-shot candidates on (the demo has its own)", "budget", "prompt"
        )
    settings = {"epochs": args.train_epochs, "report_to": args.report_to, "report_dir": args.report_dir}
    plan = budget_plan(
        workbench, request, options, prompt, args.budget, seeds=args.seeds, train_settings=settings,
        checkpoint=args.checkpoint,
    )  # fmt: skip
    say(f"data-budget curve over {', '.join(map(str, plan.sizes))} of the {plan.total} training rows")
    bars = _BudgetBars(args.seeds)
    with bars.stack:
        curve = run_budget(workbench, plan, HostEngine(options), bars)
    if args.json:
        print(json.dumps(curve.to_dict(), ensure_ascii=False))
        return 0
    show_curve(curve)
    return 0


def show_curve(curve: Curve) -> None:
    """The table (a row per size), the chart and the sentence."""
    from core.evals.budget_chart import COLUMNS, chart_text, curve_table

    table((*COLUMNS, "eval"), [(*row, p.eval_id) for row, p in zip(curve_table(curve), curve.points)])
    print()
    print(chart_text(curve.points))
    print()
    print(curve.sentence)
    say("* a real difference, after keeping each size's best prompt and comparing every size")
