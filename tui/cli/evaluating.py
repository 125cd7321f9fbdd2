"""`eval`, `compare`, `prompts` and `evals`: prompt variants graded on a split, and the verdict."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.graders import kinds
from core.engine.options import ModelOptions
from core.errors import TunelabError
from core.evals.stats import PLANNED_DISCORDANCE
from core.storage import trackers
from core.training.config import DATASET_HELP, FRACTION_HELP, HOLDOUT_HELP, TRAIN_OPTIONS, TrainConfig
from core.workbench.compare import CHECKPOINTS, CompareWatcher, training_label
from core.workbench.service import Comparison, Workbench
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import progress, say, table, warn
from tui.cli.pace import Pace, stuck_exit
from tui.cli.parsing import parse_mapping
from tui.cli.together import add_together, compare_with
from tui.cli.training import add_compare_sweep, add_options, compare_swept

REPORT_OPTIONS = tuple(o for o in TRAIN_OPTIONS if o.name in ("report_to", "report_dir"))  # declared once
BUDGET_HELP = "with --train, the data-budget curve over nested subsets of the training rows, e.g. 16,64,256,all"

if TYPE_CHECKING:
    from core.storage.schemas import EvalSummary

# -- eval -----------------------------------------------------------------------------------------


def grader_help() -> str:
    """`--grader`'s help, from the grader registry: each grader's usage and what passes (a new grader shows
    here by itself)."""
    return ("how an answer passes: " + "; ".join(f"{k.usage}: {k.help}" for k in kinds())).replace("%", "%%")


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="P",
        help="a prompt file (.toml) or a saved version (name, name@N, id); repeatable",
    )
    p.add_argument("--no-prompt", action="store_true", help="also run the items as they are (the base column)")
    p.add_argument("--dataset", default="demo", help=DATASET_HELP)
    p.add_argument(
        "--split",
        default="auto",
        help="split to evaluate: auto (the dataset's eval split, or every row of a file with no splits), a name, or all",
    )
    p.add_argument("--eval-fraction", type=float, default=0.1, help=FRACTION_HELP)
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION", help=HOLDOUT_HELP)
    p.add_argument("--expected", default=None, help="field holding the expected answer")
    p.add_argument("--map", action="append", default=[], metavar="VAR=FIELD", help="template variable from a field")
    p.add_argument(
        "--grader",
        default="labels",
        help=grader_help(),
    )
    p.add_argument(
        "--judge",
        default=None,
        metavar="MODEL",
        help="the model (URL#MODEL, endpoint:NAME or a local one) that grades judge:RUBRIC and promptfoo llm-rubric checks; "
        "default: config.toml's judge",
    )
    p.add_argument("--repeat", type=int, default=1, help="run each item N times (seed, seed+1, ...)")
    p.add_argument(
        "--truncate",
        choices=["left", "right", "skip"],
        default="left",
        help="a prompt over the model's context: cut its start, cut its end, or skip the item (counted)",
    )
    p.add_argument(
        "--skip-unrenderable",
        action="store_true",
        help="a row the model's chat template cannot render is skipped (counted), not refused",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--no-cache", action="store_true", help="recompute even identical calls")
    p.add_argument(
        "--baseline", default=None, metavar="RUN[:V]", help="compare with this run (default: the pinned one)"
    )
    p.add_argument("--pin", action="store_true", help="pin this run's first variant as the baseline")
    p.add_argument("--min-pass", default=None, metavar="RATE", help="exit 1 if a variant passes less (0.8 or 80%%)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--junit", default=None, metavar="FILE", help="also write a JUnit XML file: a testcase per item per variant"
    )
    p.add_argument(
        "--summary", default=None, metavar="FILE.md", help="also write a Markdown summary (a pull request's comment)"
    )
    add_options(p, REPORT_OPTIONS)


def _rate(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise TunelabError(f"--min-pass must be a rate like 0.8 or 80%, got '{text}'")
    return value


def _run_and_variant(ref: str) -> tuple[str, int]:
    run, _, variant = ref.partition(":")
    if variant and not variant.isdigit():
        raise TunelabError(f"variant must be a number in '{ref}'")
    return run, int(variant or 0)


def _against(summary: EvalSummary, baseline: tuple[EvalSummary, int] | None) -> list[dict[str, Any]] | None:
    """Each variant compared with the baseline, unless there is none or it is this very run."""
    from core.evals.stored import baseline_diff

    return baseline_diff(summary, *baseline) if baseline and baseline[0].id != summary.id else None


def show_summary(summary: EvalSummary, comparisons: list[dict[str, Any]] | None) -> None:
    head = (
        f"eval {summary.id} · {summary.scope} · {summary.n_items} items · grader {summary.grader}"
        + (f" · x{summary.repeat}" if summary.repeat > 1 else "")
        + ("" if summary.done else f" · {summary.status}")
    )
    rows = []
    for i, v in enumerate(summary.variants):
        lo, hi = v.ci
        latency = f"{v.mean_latency_s * 1000:.0f} ms" if v.mean_latency_s is not None else "cached"
        tokens = f"{v.mean_completion_tokens:.1f}" if v.mean_completion_tokens is not None else "-"
        against = ""
        if comparisons:
            c = comparisons[i]
            against = f"{c['delta'] * 100:+.1f} (fixed {len(c['fixed'])}, broken {len(c['broken'])})"
        rows.append(
            (
                i,
                v.label,
                f"{v.pass_rate * 100:.1f}%",
                f"[{lo * 100:.1f}, {hi * 100:.1f}]",
                latency,
                tokens,
                against,
            )
        )
    print(head)
    table(("#", "variant", "pass", "95% CI", "latency", "tokens", "vs baseline"), rows)
    cut = max((v.truncated for v in summary.variants), default=0)
    if cut:
        say(f"{cut} prompt(s) were over the model's context and were cut to fit")
    unrenderable = max((v.unrenderable for v in summary.variants), default=0)
    skipped = max((v.skipped - v.unrenderable for v in summary.variants), default=0)
    if skipped:
        say(f"{skipped} item(s) were over the model's context and were skipped (not graded)")
    if unrenderable:
        say(f"{unrenderable} row(s) the model's chat template cannot render were skipped (not graded)")


def show_comparison(judged: Comparison) -> None:
    """The grid (model variants x prompts), the verdict sentence, its notes and each approach's cost."""
    from core.evals.report import costs, grid_table

    header, body = grid_table(judged.grid)
    print()
    table(header, body)
    print(judged.verdict.sentence if judged.verdict else judged.why_none)
    for warning in judged.warnings:
        say(f"note: {warning}")
    for cost in costs(judged.grid):
        print(f"cost: {cost}")


def run_eval(args: argparse.Namespace) -> int:
    from core.engine.engines import HostEngine

    options, models, adapters = model_options(args, several_models=True, several_adapters=True)
    workbench = _workbench()
    request, min_pass = _eval_request(args)
    refs = [workbench.prompt_ref(ref) for ref in args.prompt]
    variants = workbench.variants(([None] if args.no_prompt else []) + list(refs), [None, *adapters], models)
    baseline = _given_baseline(args, workbench)
    longest = max((v.version.gen_params.max_new_tokens if v.version else 128) for v in variants)
    pace = Pace(0, step_tokens=16 * (longest + 256))  # a batch of 16 between answers
    pace.watch(stuck_exit)
    with progress("eval") as update:

        def paced(done: int, total: int) -> None:
            pace.beat()
            update(done, total)

        backend = HostEngine(options, on_loaded=pace.start)
        try:
            summary = workbench.run_eval(request, variants, backend, new_prompts=refs, on_progress=paced)
        finally:
            pace.end()  # in a process that goes on (tests, scripts), the watchdog must not outlive the eval
    return _answer(args, workbench, summary, None, baseline, min_pass)


def _eval_request(args: argparse.Namespace) -> tuple[Any, float | None]:
    """The eval the flags describe and the --min-pass bar, both checked before anything runs."""
    from core.evals.plan import EvalRequest

    min_pass = _rate(args.min_pass) if args.min_pass is not None else None
    trackers.check(args.report_to, args.report_dir)
    trackers.ready(args.report_to)  # a missing library is said before the eval runs, not after
    if args.limit is not None and args.limit < 1:
        raise TunelabError(f"--limit must be at least 1, got {args.limit}")
    request = EvalRequest(
        args.dataset,
        None if args.split == "all" else args.split,
        args.grader,
        args.repeat,
        not args.no_cache,
        args.limit,
        args.expected,
        parse_mapping(args.map),
        args.eval_fraction,
        args.truncate,
        args.skip_unrenderable,
        args.holdout,
        args.judge,
    )
    return request, min_pass


def _given_baseline(args: argparse.Namespace, workbench: Workbench) -> tuple[EvalSummary, int] | None:
    if not args.baseline:
        return None
    run, variant = _run_and_variant(args.baseline)
    return workbench.evals.load(run), variant


def _ci_files(
    root: Path,
    args: argparse.Namespace,
    summary: EvalSummary,
    judged: Comparison | None,
    comparisons: list[dict[str, Any]] | None,
    baseline: tuple[EvalSummary, int] | None,
) -> None:
    """`--junit`, `--summary` and `--report-to`: the eval as CI and a tracker read it."""
    from core.evals.ci import report, summary_markdown, write_junit
    from core.storage.atomic import write_atomic

    if args.junit:
        say(f"junit: {write_junit(summary, Path(args.junit).expanduser())}")
    if args.summary:
        sentence = judged.verdict.sentence if judged and judged.verdict else None
        pinned = f"{baseline[0].id}:{baseline[1]}" if baseline else None
        path = Path(args.summary).expanduser()
        write_atomic(path, summary_markdown(summary, sentence, comparisons, pinned))
        say(f"summary: {path}")
    if args.report_to:
        say(f"report: {report(root, summary, args.report_to, args.report_dir)}")


def _answer(
    args: argparse.Namespace,
    workbench: Workbench,
    summary: EvalSummary,
    judged: Comparison | None,
    baseline: tuple[EvalSummary, int] | None,
    min_pass: float | None,
) -> int:
    """What `eval` and `compare` print (and pin, and report): the table or JSON, the comparison when there is
    one; exit 1 when a variant is under --min-pass."""
    baseline = baseline or workbench.baseline(summary)
    comparisons = _against(summary, baseline)
    for note in dict.fromkeys(f"{v.model}: {n}" for v in summary.variants for n in v.notes):
        say(f"note: model {note}")
    if summary.judge is not None:
        say(summary.judge.line)
    if args.pin:
        workbench.evals.pin(summary.id)
    if judged and getattr(args, "report", None):
        say(f"report: {workbench.verdicts.write_report(judged, Path(args.report).expanduser())}")
    _ci_files(workbench.root, args, summary, judged, comparisons, baseline)
    if args.json:
        shown = judged.to_dict() if judged else summary.to_dict()
        print(json.dumps({**shown, "comparisons": comparisons}, ensure_ascii=False))
    else:
        show_summary(summary, comparisons)
        if baseline and comparisons:
            print(f"vs baseline {baseline[0].id}:{baseline[1]} ({baseline[0].variants[baseline[1]].label})")
        if judged:
            show_comparison(judged)
    failing = [v for v in summary.variants if min_pass is not None and v.pass_rate < min_pass]
    for v in failing:
        say(f"tunelab: min-pass failed: {v.label} passed {v.pass_rate:.1%} < {min_pass:.1%}")
    return 1 if failing else 0


def add_compare(p: argparse.ArgumentParser) -> None:
    add_eval(p)
    p.add_argument("--train", action="store_true", help="first train a LoRA on the dataset as is")
    p.add_argument("--train-with-prompt", action="store_true", help="also train a LoRA with each --prompt")
    p.add_argument(
        "--train-epochs", type=float, default=TrainConfig().epochs, help="epochs for the LoRAs --train starts"
    )
    p.add_argument(
        "--seeds", type=int, default=1, help="train each LoRA with K seeds; its cell shows their mean and spread"
    )
    p.add_argument(
        "--report", default=None, metavar="FILE", help="also write the grid and verdict to FILE (.md or .html)"
    )
    p.add_argument(
        "--checkpoint",
        default="final",
        choices=CHECKPOINTS,
        help="judge each run by its final adapter, or by its checkpoint of highest pass rate (--train scores them)",
    )
    p.add_argument(
        "--final",
        action="store_true",
        help="judge the chosen cells once on the sealed test split (each look is counted and said)",
    )
    p.add_argument(
        "--optimize",
        type=int,
        default=None,
        metavar="BUDGET",
        help="first search the (first) --prompt on the dev rows within BUDGET graded generations (tunelab optimize); "
        "the best found is a column of its own (and trained with, with --train-with-prompt), the search counted",
    )
    p.add_argument(
        "--parity",
        action="store_true",
        help="run one model served and here (two --model) on the same items, greedy, and list every item whose "
        "output differs, with the likely cause (exit 1 if any)",
    )
    p.add_argument(
        "--plan",
        type=float,
        default=None,
        metavar="POINTS",
        help="run nothing: say how many items a true difference of POINTS needs, and what this split can show",
    )
    p.add_argument(
        "--discordance",
        type=float,
        default=PLANNED_DISCORDANCE,
        help="with --plan: the share of items two cells disagree on (from an earlier eval, or a guess; the "
        "verdict's 'these items find N points' uses the same 30%%, or the upper bound of the one observed)",
    )
    add_together(p)
    add_compare_sweep(p)
    p.add_argument("--budget", metavar="SIZES", help=BUDGET_HELP)  # the data-budget curve: tui/cli/budget.py


class _CompareBars(CompareWatcher):
    """One progress bar per stage on stderr: each training run, then the eval."""

    def __init__(self, seeds: int) -> None:
        self.seeds = seeds
        self.stack = ExitStack()
        self.update: Callable[[int, int], object] = lambda done, total: None

    def phase(self, what: str) -> None:
        self.stack.close()
        self.update = self.stack.enter_context(progress(what))

    def training(self, config: TrainConfig, index: int, total: int) -> None:
        self.phase(training_label(config, self.seeds))

    def started(self, run_id: str) -> None:
        say(f"training {run_id}")

    def step(self, step: int, total: int) -> None:
        self.update(step, total)

    def evaluating(self, labels: list[str]) -> None:
        self.phase(f"eval ({len(labels)} cells)")

    def progress(self, done: int, total: int) -> None:
        self.update(done, total)


def run_compare(args: argparse.Namespace) -> int:
    """The whole question in one command: base and each adapter, with no prompt and each prompt, and
    the verdict; with --train, the LoRAs it needs are trained first."""
    from core.engine.engines import HostEngine

    if args.budget is not None:
        from tui.cli.budget import run_budget_curve

        return run_budget_curve(args)
    if args.parity:
        from tui.cli.parity import run_parity_check

        return run_parity_check(args, _eval_request(args)[0])
    options, models, adapters = model_options(args, several_models=True, several_adapters=True)
    workbench = _workbench()
    request, min_pass = _eval_request(args)
    if args.plan is not None:
        sized = workbench.verdicts.sizing(request, args.plan, args.discordance)
        if args.json:
            print(json.dumps(sized))
        else:
            print(
                f"a true difference of {sized['points']:g} points needs {sized['items_needed']} items "
                f"(80% power at the 5% level, {sized['discordance']:.0%} of items discordant); "
                f"this split's {sized['items']} items find {sized['detectable_points']:g} points or more"
            )
        return 0
    refs = [workbench.prompt_ref(ref) for ref in args.prompt]
    if args.optimize is not None and not args.both_together:  # with it: each search's budget
        from tui.cli.optimizing import optimized

        refs += optimized(args, workbench, request, refs, HostEngine(options))
    plan = workbench.compare_plan(
        request,
        options,
        refs,
        adapters,
        train=args.train,
        train_with_prompt=args.train_with_prompt,
        seeds=args.seeds,
        train_settings={"epochs": args.train_epochs, "report_to": args.report_to, "report_dir": args.report_dir},
        final=args.final,
        checkpoint=args.checkpoint,
        also=models[1:],  # the first is trained on; the rest are rows beside it (a served model)
    )
    plan = compare_swept(args, workbench, plan)
    baseline = _given_baseline(args, workbench)
    bars = _CompareBars(args.seeds)
    with bars.stack:
        judged = compare_with(args, workbench, plan, request, HostEngine(options), bars, bars.stack)
    return _answer(args, workbench, judged.summary, judged, baseline, min_pass)


# -- prompts and evals ----------------------------------------------------------------------------
def add_evals(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", nargs="?", choices=["list", "show", "pin", "export", "resume"], default="list", help="what to do"
    )
    p.add_argument("run", nargs="?", help="run id (prefix); for pin, RUN[:V]")
    p.add_argument("--format", default="jsonl", help="with export: jsonl or csv (one row per graded item)")


def run_evals(args: argparse.Namespace) -> int:
    workbench = _workbench()
    runs = workbench.evals
    for run_id in workbench.recover_evals():
        say(f"recovered eval {run_id}: its process ended before it finished (tunelab evals resume {run_id})")
    if args.action == "list":
        rows = []
        for row in runs.list():
            best = max(row.variants, key=lambda v: v.pass_rate, default=None)
            rows.append(
                (
                    row.id,
                    row.created_at[:19],
                    row.scope,
                    row.status,
                    f"{best.pass_rate:.1%} {best.label}" if best else "",
                )
            )
        table(("run", "created", "data", "status", "best"), rows)
        warn(runs.problems)
        return 0
    if not args.run:
        raise TunelabError(f"evals {args.action} needs a run id")
    if args.action == "resume":
        from core.engine.engines import HostEngine

        model = runs.load(args.run).variants[0].model
        with progress("eval") as update:
            summary = workbench.resume_eval(args.run, HostEngine(ModelOptions(model)), on_progress=update)
        show_summary(summary, _against(summary, workbench.baseline(summary)))
        return 0
    if args.action == "pin":
        run, variant = _run_and_variant(args.run)
        doc = runs.pin(run, variant)
        print(f"pinned {doc['run']}:{doc['variant']} as the baseline for {doc['key']}")
        return 0
    summary = runs.load(args.run)
    if args.action == "export":
        from core.history.io import eval_rows, write_eval_rows

        count = write_eval_rows(eval_rows(runs.root, summary), args.format, sys.stdout)
        say(f"exported {count} graded row(s) of {summary.id}")
        return 0
    comparisons = _against(summary, workbench.baseline(summary))
    show_summary(summary, comparisons)
    for i, c in enumerate(comparisons or []):
        if c["fixed"] or c["broken"]:
            print(f"  {i}: fixed {', '.join(c['fixed']) or '-'}; broken {', '.join(c['broken']) or '-'}")
    return 0
