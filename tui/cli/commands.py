"""The commands: each gathers its flags, calls `core.workbench.Workbench` and prints the answer."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from core import demo
from core.engine.options import ModelOptions
from core.engine.prompt import FOLD_NOTE, MODES, Prompt
from core.errors import TunelabError
from core.history.records import eval_scope
from core.storage.paths import data_dir
from core.training.config import TrainConfig
from core.workbench.compare import CompareWatcher, training_label
from core.workbench.service import Comparison, Workbench, parse_mapping
from tui.cli.options import model_options
from tui.cli.output import progress, say, table

Adder = Callable[[argparse.ArgumentParser], None]


def _workbench() -> Workbench:
    return Workbench(data_dir())


# -- gen ------------------------------------------------------------------------------------------
def add_gen(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="the prompt text ('-' reads stdin)")
    p.add_argument("--system", default="", help="system prompt")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--chat", dest="mode", action="store_const", const="chat", help="apply the chat template")
    mode.add_argument("--raw", dest="mode", action="store_const", const="raw", help="send the text as is")
    p.set_defaults(mode="auto")
    p.add_argument("--max-new-tokens", type=int, default=128, help="most tokens to generate")
    p.add_argument("--min-new-tokens", type=int, default=0, help="keep going past end-of-text (benchmarks)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--no-history", action="store_true", help="do not save to history")
    p.add_argument("--json", action="store_true", help="print the full record as JSON at the end")


def run_gen(args: argparse.Namespace) -> int:
    from core.engine.params import GenParams

    options, _, _ = model_options(args)
    params = GenParams.from_dict(
        {
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "top_k": args.top_k,
            "seed": args.seed,
            "stop": args.stop,
            "min_new_tokens": args.min_new_tokens,
        }
    )
    text = sys.stdin.read() if args.prompt == "-" else args.prompt
    workbench = _workbench()
    prompt = Prompt(text, args.system, args.mode)
    cancel = threading.Event()
    outcome: dict[str, Any] = {}
    done = threading.Event()  # not Thread.join: a join cut short by ctrl+c can return with the thread alive

    def emit(chunk: str, _tokens: int) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def work() -> None:
        try:
            outcome["result"] = workbench.generate_here(options, prompt, params, emit=emit, cancel=cancel)
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:  # the first ctrl+c cancels (a model still loading is cancelled when loaded)
        cancel.set()
        done.wait()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    sys.stdout.write("\n")
    status = "cancelled" if result["stop_reason"] == "cancelled" else "done"
    record = workbench.save_generation(
        model=options.model,
        prompt=prompt,
        params=params.to_dict(),
        result=result,
        status=status,
        adapter=options.adapter,
        save=not args.no_history,
    )
    if result.get("note"):
        say(f"note: model {options.model}: {result['note']}")
    say(
        f"[{result['completion_tokens']} tokens, {result['tok_per_s']} tok/s, "
        f"{result['latency_s']:.2f}s, stop: {result['stop_reason']}]"
    )
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    return 130 if status == "cancelled" else 0


# -- eval -----------------------------------------------------------------------------------------
DATASET_HELP = (
    "'demo', a .jsonl/.json/.csv/.tsv/.parquet/.arrow file, a folder of split files,"
    " or FOLDER#NAME from a dataset_info.json"
)
FRACTION_HELP = "rows of a file with no splits held out as 'eval' (chosen by id, the same in train and eval)"


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
    p.add_argument("--expected", default=None, help="field holding the expected answer")
    p.add_argument("--map", action="append", default=[], metavar="VAR=FIELD", help="template variable from a field")
    p.add_argument(
        "--grader",
        default="labels",
        help="exact, labels[:a,b], contains[:x], not_contains:x, regex:p, json[:schema], levenshtein[:t], chrf[:t]",
    )
    p.add_argument("--repeat", type=int, default=1, help="run each item N times (seed, seed+1, ...)")
    p.add_argument(
        "--truncate",
        choices=["left", "right", "skip"],
        default="left",
        help="a prompt over the model's context: cut its start, cut its end, or skip the item (counted)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--no-cache", action="store_true", help="recompute even identical calls")
    p.add_argument(
        "--baseline", default=None, metavar="RUN[:V]", help="compare with this run (default: the pinned one)"
    )
    p.add_argument("--pin", action="store_true", help="pin this run's first variant as the baseline")
    p.add_argument("--min-pass", default=None, metavar="RATE", help="exit 1 if a variant passes less (0.8 or 80%%)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


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


def _against(summary: dict[str, Any], baseline: tuple[dict[str, Any], int] | None) -> list[dict[str, Any]] | None:
    """Each variant compared with the baseline, unless there is none or it is this very run."""
    from core.evals.runner import compare

    return compare(summary, *baseline) if baseline and baseline[0]["id"] != summary["id"] else None


def show_summary(summary: dict[str, Any], comparisons: list[dict[str, Any]] | None) -> None:
    head = (
        f"eval {summary['id']} · {eval_scope(summary)} · {summary['n_items']} items"
        f" · grader {summary['grader']}"
        + (f" · x{summary['repeat']}" if summary["repeat"] > 1 else "")
        + ("" if summary["status"] == "done" else f" · {summary['status']}")
    )
    rows = []
    for i, v in enumerate(summary["variants"]):
        lo, hi = v["ci"]
        latency = f"{v['mean_latency_s'] * 1000:.0f} ms" if v["mean_latency_s"] is not None else "cached"
        tokens = f"{v['mean_completion_tokens']:.1f}" if v["mean_completion_tokens"] is not None else "-"
        against = ""
        if comparisons:
            c = comparisons[i]
            against = f"{c['delta'] * 100:+.1f} (fixed {len(c['fixed'])}, broken {len(c['broken'])})"
        rows.append(
            (
                i,
                v["label"],
                f"{v['pass_rate'] * 100:.1f}%",
                f"[{lo * 100:.1f}, {hi * 100:.1f}]",
                latency,
                tokens,
                against,
            )
        )
    print(head)
    table(("#", "variant", "pass", "95% CI", "latency", "tokens", "vs baseline"), rows)
    cut = max((v.get("truncated", 0) for v in summary["variants"]), default=0)
    if cut:
        say(f"{cut} prompt(s) were over the model's context and were cut to fit")
    skipped = max((v.get("skipped", 0) for v in summary["variants"]), default=0)
    if skipped:
        say(f"{skipped} item(s) were over the model's context and were skipped (not graded)")


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
    from core.evals.backends import HostBackend

    options, models, adapters = model_options(args, several_models=True, several_adapters=True)
    workbench = _workbench()
    request, min_pass = _eval_request(args)
    refs = [workbench.prompt_ref(ref) for ref in args.prompt]
    variants = workbench.variants(([None] if args.no_prompt else []) + list(refs), [None, *adapters], models)
    baseline = _given_baseline(args, workbench)
    with progress("eval") as update:
        summary = workbench.run_eval(request, variants, HostBackend(options), new_prompts=refs, on_progress=update)
    return _answer(args, workbench, summary, None, baseline, min_pass)


def _eval_request(args: argparse.Namespace) -> tuple[Any, float | None]:
    """The eval the flags describe and the --min-pass bar, both checked before anything runs."""
    from core.evals.runner import EvalRequest

    min_pass = _rate(args.min_pass) if args.min_pass is not None else None
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
    )
    return request, min_pass


def _given_baseline(args: argparse.Namespace, workbench: Workbench) -> tuple[dict[str, Any], int] | None:
    if not args.baseline:
        return None
    run, variant = _run_and_variant(args.baseline)
    return workbench.evals.load(run), variant


def _answer(
    args: argparse.Namespace,
    workbench: Workbench,
    summary: dict[str, Any],
    judged: Comparison | None,
    baseline: tuple[dict[str, Any], int] | None,
    min_pass: float | None,
) -> int:
    """What `eval` and `compare` print (and pin, and report): the table or JSON, the comparison when there is
    one; exit 1 when a variant is under --min-pass."""
    baseline = baseline or workbench.baseline(summary)
    comparisons = _against(summary, baseline)
    for note in dict.fromkeys(f"{v.get('model')}: {n}" for v in summary["variants"] for n in v.get("notes", ())):
        say(f"note: model {note}")
    if args.pin:
        workbench.evals.pin(summary["id"])
    if judged and getattr(args, "report", None):
        say(f"report: {workbench.write_report(judged, Path(args.report).expanduser())}")
    if args.json:
        shown = judged.to_dict() if judged else summary
        print(json.dumps({**shown, "comparisons": comparisons}, ensure_ascii=False))
    else:
        show_summary(summary, comparisons)
        if baseline and comparisons:
            print(f"vs baseline {baseline[0]['id']}:{baseline[1]} ({baseline[0]['variants'][baseline[1]]['label']})")
        if judged:
            show_comparison(judged)
    failing = [v for v in summary["variants"] if min_pass is not None and v["pass_rate"] < min_pass]
    for v in failing:
        say(f"tunelab: min-pass failed: {v['label']} passed {v['pass_rate']:.1%} < {min_pass:.1%}")
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


class _CompareBars(CompareWatcher):
    """One progress bar per stage on stderr: each training run, then the eval."""

    def __init__(self, seeds: int) -> None:
        self.seeds = seeds
        self.stack = ExitStack()
        self.update: Callable[[int, int], object] = lambda done, total: None

    def _stage(self, what: str) -> None:
        self.stack.close()
        self.update = self.stack.enter_context(progress(what))

    def training(self, config: TrainConfig, index: int, total: int) -> None:
        self._stage(training_label(config, self.seeds))

    def started(self, run_id: str) -> None:
        say(f"training {run_id}")

    def step(self, step: int, total: int) -> None:
        self.update(step, total)

    def evaluating(self, labels: list[str]) -> None:
        self._stage(f"eval ({len(labels)} cells)")

    def progress(self, done: int, total: int) -> None:
        self.update(done, total)


def run_compare(args: argparse.Namespace) -> int:
    """The whole question in one command: base and each adapter, with no prompt and each prompt, and
    the verdict; with --train, the LoRAs it needs are trained first."""
    from core.evals.backends import HostBackend

    options, _, adapters = model_options(args, several_adapters=True)
    workbench = _workbench()
    request, min_pass = _eval_request(args)
    plan = workbench.compare_plan(
        request,
        options,
        [workbench.prompt_ref(ref) for ref in args.prompt],
        adapters,
        train=args.train,
        train_with_prompt=args.train_with_prompt,
        seeds=args.seeds,
        train_settings={"epochs": args.train_epochs},
    )
    baseline = _given_baseline(args, workbench)
    bars = _CompareBars(args.seeds)
    with bars.stack:
        judged = workbench.compare(plan, HostBackend(options), bars)
    return _answer(args, workbench, judged.summary, judged, baseline, min_pass)


# -- prompts and evals ----------------------------------------------------------------------------
def add_prompts(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "show", "diff", "save"], help="what to do")
    p.add_argument("refs", nargs="*", help="versions (name, name@N, id) or, for save, a .toml file")


def run_prompts(args: argparse.Namespace) -> int:
    from core.data.prompts import read_prompt_file

    store = _workbench().prompts
    need = {"list": (0, 1), "show": (1, 1), "diff": (2, 2), "save": (1, 1)}[args.action]
    if not need[0] <= len(args.refs) <= need[1]:
        raise TunelabError(
            f"prompts {args.action} takes {need[0]}{'' if need[0] == need[1] else f' to {need[1]}'} argument(s)"
        )
    if args.action == "list":
        table(
            ("version", "id", "created", "template"),
            [
                (
                    f"{r['name']}@{r['number']}",
                    r["id"],
                    r["created_at"][:19],
                    repr(" ".join(r["template"].split())[:50]),
                )
                for r in store.versions(args.refs[0] if args.refs else None)
            ],
        )
    elif args.action == "show":
        row, version = store.get(args.refs[0])
        print(f"{row['name']}@{row['number']} ({row['id']})")
        print(version.as_text(), end="")
    elif args.action == "diff":
        print(store.diff(*args.refs), end="")
    else:
        name, version = read_prompt_file(Path(args.refs[0]))
        store.save(name, version)
        print(f"saved {name} as {version.id}")
    return 0


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
            best = max(row["variants"], key=lambda v: v["pass_rate"], default=None)
            rows.append(
                (
                    row["id"],
                    row["created_at"][:19],
                    eval_scope(row),
                    row["status"],
                    f"{best['pass_rate']:.1%} {best['label']}" if best else "",
                )
            )
        table(("run", "created", "data", "status", "best"), rows)
        _warn(runs.problems)
        return 0
    if not args.run:
        raise TunelabError(f"evals {args.action} needs a run id")
    if args.action == "resume":
        from core.evals.backends import HostBackend

        model = runs.load(args.run)["variants"][0]["model"]
        with progress("eval") as update:
            summary = workbench.resume_eval(args.run, HostBackend(ModelOptions(model)), on_progress=update)
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
        say(f"exported {count} graded row(s) of {summary['id']}")
        return 0
    comparisons = _against(summary, workbench.baseline(summary))
    show_summary(summary, comparisons)
    for i, c in enumerate(comparisons or []):
        if c["fixed"] or c["broken"]:
            print(f"  {i}: fixed {', '.join(c['fixed']) or '-'}; broken {', '.join(c['broken']) or '-'}")
    return 0


# -- training -------------------------------------------------------------------------------------
TRAIN_NUMBERS: tuple[tuple[str, type, str], ...] = (  # defaults: TrainConfig's
    ("--lora-r", int, "LoRA rank"),
    ("--lora-alpha", int, "LoRA scaling numerator"),
    ("--lora-dropout", float, "dropout on the LoRA path"),
    ("--learning-rate", float, "peak learning rate"),
    ("--warmup-ratio", float, "share of steps spent warming up"),
    ("--epochs", float, "passes over the data"),
    ("--max-steps", int, "stop after this many steps (overrides --epochs)"),
    ("--batch-size", int, "examples per micro-batch"),
    ("--grad-accum", int, "micro-batches per step"),
    ("--max-seq-len", int, "tokens per example, prompt and answer"),
    ("--eval-every", int, "steps between eval losses"),
    ("--save-every", int, "steps between checkpoints"),
    ("--seed", int, "seed for shuffling and init"),
)


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="demo", help=DATASET_HELP)
    p.add_argument("--split", default="train", help="split to train on ('all': every row of the file)")
    p.add_argument("--eval-split", default="eval", help="split for the eval loss ('none' to skip)")
    p.add_argument(
        "--eval-dataset",
        default=None,
        metavar="FILE",
        help="the eval loss from this file (its eval split, or all its rows) instead of --dataset's",
    )
    p.add_argument("--eval-fraction", type=float, default=0.1, help=FRACTION_HELP)
    p.add_argument("--prompt", default=None, metavar="P", help="render examples with this prompt (file or version)")
    p.add_argument("--mode", default="raw", choices=MODES, help="how examples are rendered without --prompt")
    p.add_argument("--expected", default=None, help="field holding the answer to learn")
    p.add_argument("--map", action="append", default=[], metavar="VAR=FIELD", help="template variable from a field")
    defaults = TrainConfig()
    for flag, kind, helptext in TRAIN_NUMBERS:
        p.add_argument(flag, type=kind, default=getattr(defaults, flag[2:].replace("-", "_")), help=helptext)
    p.add_argument(
        "--schedule", default="cosine", choices=["cosine", "linear", "constant"], help="learning-rate schedule"
    )
    p.add_argument("--target-modules", default="all-linear", help="all-linear, or names like q_proj,v_proj")
    p.add_argument(
        "--modules-to-save",
        default=",".join(defaults.modules_to_save),
        help="comma list trained in full, e.g. lm_head (more memory and a much larger adapter)",
    )
    p.add_argument("--full-loss", action="store_true", help="also take loss on the prompt tokens")
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass: much less memory for long sequences, about 30%% slower",
    )
    p.add_argument(
        "--packing",
        action="store_true",
        help="pack each step's examples into full rows, padding-free (checked against padding at the start)",
    )
    p.add_argument("--use-dora", action="store_true", help="DoRA: weight-decomposed LoRA (often better at low rank)")
    p.add_argument(
        "--use-rslora", action="store_true", help="rank-stabilized LoRA scaling (alpha/sqrt(r)) for high ranks"
    )
    bits = p.add_mutually_exclusive_group()
    for n in ("4", "8"):
        bits.add_argument(
            f"--load-in-{n}bit",
            dest="quantize",
            action="store_const",
            const=f"{n}bit",
            help=f"QLoRA: the base in {n}-bit through bitsandbytes (CUDA), for bases too large for memory",
        )
    p.add_argument("--nproc", type=int, default=1, help="processes under torchrun (DDP: gloo on CPU, nccl on GPUs)")
    p.add_argument("--nnodes", type=int, default=1, help="machines in a multi-node run (torchrun rendezvous)")
    p.add_argument(
        "--node-rank",
        type=int,
        default=0,
        help="this machine's place in a multi-node run: 0 creates the run; others join it by --rdzv-endpoint",
    )
    p.add_argument(
        "--rdzv-endpoint", default=None, metavar="HOST:PORT", help="node 0's address and a free port, on every node"
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue RUN from its last checkpoint (refused if these settings differ from its own)",
    )
    p.add_argument("--detach", action="store_true", help="start and return at once")


def run_train(args: argparse.Namespace) -> int:
    options, _, _ = model_options(args)
    workbench = _workbench()
    ref = workbench.prompt_ref(args.prompt) if args.prompt else None
    targets: str | tuple[str, ...] = (
        args.target_modules
        if args.target_modules == "all-linear"
        else tuple(t.strip() for t in args.target_modules.split(",") if t.strip())
    )
    settings = {
        key.lstrip("-").replace("-", "_"): getattr(args, key.lstrip("-").replace("-", "_")) for key, *_ in TRAIN_NUMBERS
    }
    settings.update(
        split=args.split,
        eval_split=None if args.eval_split == "none" else args.eval_split,
        eval_dataset=args.eval_dataset,
        target_modules=targets,
        modules_to_save=tuple(m for m in args.modules_to_save.split(",") if m),
        schedule=args.schedule,
        answer_only_loss=not args.full_loss,
        gradient_checkpointing=args.gradient_checkpointing,
        packing=args.packing,
        use_dora=args.use_dora,
        use_rslora=args.use_rslora,
        quantize=args.quantize,
        nproc=args.nproc,
        nnodes=args.nnodes,
        rdzv_endpoint=args.rdzv_endpoint,
        eval_fraction=args.eval_fraction,
    )
    config = workbench.train_config(
        settings,
        options=options,
        dataset=args.dataset,
        expected=args.expected,
        mapping=parse_mapping(args.map),
        prompt=ref.version if ref else None,
        mode=args.mode,
    )
    if not 0 <= args.node_rank < config.nnodes:
        raise TunelabError(f"--node-rank must be between 0 and {config.nnodes - 1} (--nnodes {config.nnodes})")
    if args.node_rank > 0:  # node 0 created the run on the shared filesystem; its settings rule
        run_id = workbench.join_run(str(config.rdzv_endpoint), args.node_rank)
        say(f"node {args.node_rank} joined training run {run_id}")
    elif args.resume:
        run_id = workbench.resume_run(args.resume, config)
        say(f"resumed training run {run_id}")
    else:
        workbench.check_targets(config)  # a bad name is exit 2 with nothing stored
        run_id = workbench.start_run(config, [ref] if ref else [])
        say(f"started training run {run_id}")
        if args.detach:
            for note in workbench.runs.notes(run_id):  # what the rows give (the child's own notes come later)
                say(f"note: {note}")
    return 0 if args.detach else follow(workbench, run_id, model=config.model)


def follow(workbench: Workbench, run_id: str, model: str | None = None) -> int:
    """Print metrics (and each note about the run's rows, once) as they arrive until the run ends; Ctrl+C
    detaches, the run goes on."""
    from core.training.runs import LIVE, step_parts

    offset, shown, said = 0, -1, set()
    try:
        while True:
            for note in workbench.runs.notes(run_id):
                if note not in said:
                    said.add(note)
                    say(f"note: model {model}: {note}" if model and note == FOLD_NOTE else f"note: {note}")
            rows, offset = workbench.runs.metrics(run_id, offset)
            for row in rows:
                print(" ".join([f"step {row['step']}", *step_parts(row, skip=("grad_norm",))]), flush=True)
                shown = row["step"]
            status = workbench.runs.status(run_id)
            if status["state"] not in LIVE:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        say(f"\ndetached: the run goes on (tunelab runs attach {run_id})")
        return 0
    say(
        f"run {run_id}: {status['state']} at step {status.get('step', shown)}"
        + (f" ({status['error']})" if status.get("error") else "")
    )
    return 0 if status["state"] in {"done", "stopped"} else 1


def add_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "show", "attach", "stop", "cancel", "resume"],
        default="list",
        help="what to do",
    )
    p.add_argument("run", nargs="?", help="run id (prefix)")
    p.add_argument("--now", action="store_true", help="with stop: kill at once instead of stop-and-save")
    p.add_argument("--grace", type=float, default=30.0, help="with stop: seconds before escalating to SIGKILL")


def run_runs(args: argparse.Namespace) -> int:
    workbench = _workbench()
    runs = workbench.runs
    if args.action == "list":
        listed = runs.list()
        table(
            ("run", "state", "step", "loss", "note"),
            [
                (
                    s["id"],
                    s["state"],
                    f"{s.get('step', 0)}/{s.get('total_steps', '?')}",
                    f"{s['loss']:.4f}" if isinstance(s.get("loss"), (int, float)) else "",
                    s.get("error") or "",
                )
                for s in listed
            ],
        )
        _warn([s["problem"] for s in listed if s.get("problem")])
        return 0
    if not args.run:
        raise TunelabError(f"runs {args.action} needs a run id")
    run_id = runs.status(args.run)["id"]
    if args.action == "show":
        print(json.dumps({"status": runs.status(run_id), "config": runs.config(run_id)}, indent=2))
    elif args.action == "attach":
        return follow(workbench, run_id)
    elif args.action == "stop":
        if args.now:
            say(workbench.kill_run(run_id))
        else:
            status = workbench.stop_and_wait(run_id, grace=args.grace)
            say(
                f"{run_id}: {status['state']}"
                + (f", saved {status['last_checkpoint']}" if status.get("last_checkpoint") else "")
            )
    elif args.action == "cancel":
        runs.cancel(run_id)
        say(f"cancelling {run_id}")
    else:
        workbench.resume_run(run_id)
        say(f"resumed {run_id}")
        return follow(workbench, run_id)
    return 0


def add_adapters(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "merge"], default="list", help="what to do")
    p.add_argument("adapter", nargs="?", help="with merge: a training run id or PEFT folder (or --adapter)")
    p.add_argument("--out", default=None, help="with merge: the new model folder")


def run_adapters(args: argparse.Namespace) -> int:
    from core.training.adapters import merge

    workbench = _workbench()
    if args.action == "list":
        table(
            ("run", "folder", "eval loss", "trained on"),
            [
                (a.run_id, a.path, f"{a.eval_loss:.4f}" if a.eval_loss is not None else "", a.trained_on)
                for a in workbench.adapters()
            ],
        )
        _warn([s["problem"] for s in workbench.runs.list() if s.get("problem")])
        return 0
    options, models, _ = model_options(args)
    adapter = args.adapter or options.adapter
    if not adapter or not args.out:
        raise TunelabError("adapters merge needs an adapter and --out DIR")
    base = models[0] if getattr(args, "models", None) else None
    out = merge(workbench.root, adapter, Path(args.out).expanduser(), base, options.load_kwargs())
    say(f"merged model written to {out} (use it with --model {out})")
    return 0


def _warn(problems: list[str]) -> None:
    """One warning line per bad file, after the output it did not stop."""
    for problem in problems:
        say(f"tunelab: warning: {problem}")


# -- small commands -------------------------------------------------------------------------------
def add_locate(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["config", "data", "themes"], help="which path to print")


def run_locate(args: argparse.Namespace) -> int:
    from core.storage.config import config_path, themes_dir

    print({"config": config_path, "data": data_dir, "themes": themes_dir}[args.what]())
    return 0


def add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build"], help="what to do")
    p.add_argument("--steps", type=int, default=None, help="pre-training steps")
    p.add_argument("--out", default=None, help="model folder (default: the shipped one)")
    p.add_argument("--data-out", default=None, help="task folder (default: the shipped one)")


def run_demo(args: argparse.Namespace) -> int:
    from core.demo.build import BuildConfig, build

    cfg = BuildConfig() if args.steps is None else BuildConfig(steps=args.steps)
    build(
        Path(args.out) if args.out else demo.MODEL_DIR,
        Path(args.data_out) if args.data_out else demo.TASK_DIR,
        cfg,
        log=say,
    )
    return 0


COMMANDS: dict[str, tuple[str, Adder]] = {
    "gen": ("generate from a prompt, streaming to stdout", add_gen),
    "eval": ("run prompt variants (and adapters) over a dataset split and grade them", add_eval),
    "compare": ("prompt, LoRA, or both? every cell graded and the verdict (--train trains the LoRAs)", add_compare),
    "train": ("start a LoRA training run (a detached process) and follow it", add_train),
    "runs": ("list, show, attach to, stop, cancel or resume training runs", add_runs),
    "adapters": ("list trained adapters, or merge one into its base model", add_adapters),
    "prompts": ("list, show, diff or save prompt versions", add_prompts),
    "evals": ("list, show, pin or export eval runs", add_evals),
    "locate": ("print where the config file, data or user themes live", add_locate),
    "demo": ("rebuild the demo model and demo task", add_demo),
}
RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "gen": run_gen,
    "eval": run_eval,
    "compare": run_compare,
    "train": run_train,
    "runs": run_runs,
    "adapters": run_adapters,
    "prompts": run_prompts,
    "evals": run_evals,
    "locate": run_locate,
    "demo": run_demo,
}
