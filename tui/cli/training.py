"""`train`, `runs` and `adapters`: LoRA runs started as detached processes, followed, and merged."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from core.engine.prompt import FOLD_NOTE, MODES
from core.errors import TunelabError
from core.training.config import TrainConfig
from core.workbench.service import Workbench, parse_mapping
from tui.cli.evaluating import DATASET_HELP, FRACTION_HELP, HOLDOUT_HELP
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import say, table, warn

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
    ("--eval-items", int, "also score this many eval rows' pass rate at each eval step (0: off; RUN@best)"),
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
    p.add_argument("--eval-grader", default="exact", help="how --eval-items rows are graded (as eval's --grader)")
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION", help=HOLDOUT_HELP)
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
        eval_grader=args.eval_grader,
        holdout=args.holdout,
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
        warn([s["problem"] for s in listed if s.get("problem")])
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
        warn([s["problem"] for s in workbench.runs.list() if s.get("problem")])
        return 0
    options, models, _ = model_options(args)
    adapter = args.adapter or options.adapter
    if not adapter or not args.out:
        raise TunelabError("adapters merge needs an adapter and --out DIR")
    base = models[0] if getattr(args, "models", None) else None
    out = merge(workbench.root, adapter, Path(args.out).expanduser(), base, options.load_kwargs())
    say(f"merged model written to {out} (use it with --model {out})")
    return 0
