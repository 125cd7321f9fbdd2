"""`train`, `runs` and `adapters`: LoRA runs started as detached processes, followed, and merged."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.engine.prompt import FOLD_NOTE
from core.errors import TunelabError
from core.training.config import TRAIN_OPTIONS
from core.training.options import Option
from core.workbench.service import Workbench
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import say, table, warn
from tui.cli.parsing import parse_mapping


# -- training -------------------------------------------------------------------------------------
def add_train(p: argparse.ArgumentParser) -> None:
    add_options(p)
    p.add_argument("--prompt", default=None, metavar="P", help="render examples with this prompt (file or version)")
    p.add_argument(
        "--node-rank",
        type=int,
        default=0,
        help="this machine's place in a multi-node run: 0 creates the run; others join it by --rdzv-endpoint",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue RUN from its last checkpoint (refused if these settings differ from its own)",
    )
    p.add_argument("--detach", action="store_true", help="start and return at once")


def add_options(p: argparse.ArgumentParser, options: tuple[Option, ...] = TRAIN_OPTIONS) -> None:
    """A flag for each training option declared with one (core/training/config.py): its type, default, help,
    metavar and choices from the declaration; its value read by the declaration's `parse`."""
    for option in options:
        helps = [text.replace("%", "%%") for text in option.helps]  # argparse formats help with %
        if isinstance(option.flag, tuple):  # one switch per choice, at most one given
            group = p.add_mutually_exclusive_group()
            for flag, choice, text in zip(option.flag, option.choices, helps):
                group.add_argument(flag, dest=option.dest, action="store_const", const=choice, help=text)
        elif option.flag is None:
            continue
        elif option.kind is bool:
            p.add_argument(option.flag, dest=option.dest, action="store_true", help=helps[0])
        elif option.kind is dict:  # VAR=FIELD pairs, read by `train_settings`
            p.add_argument(
                option.flag, dest=option.dest, action="append", default=[], metavar=option.metavar, help=helps[0]
            )
        else:
            p.add_argument(
                option.flag,
                dest=option.dest,
                type=typed(option),
                default=option.shown(option.default) if option.kind is tuple else option.default,
                metavar=option.metavar,
                choices=option.choices or None,
                help=helps[0],
            )


def typed(option: Option) -> Callable[[str], Any]:
    """argparse's `type` for a declared option: its `parse`, whose error names the field as the form's does."""

    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except TunelabError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.kind.__name__
    return parse


def train_settings(args: argparse.Namespace, options: tuple[Option, ...] = TRAIN_OPTIONS) -> dict[str, Any]:
    """Each flagged option's value, by its field's name (a negating flag turned around, --map pairs read)."""
    settings: dict[str, Any] = {}
    for option in options:
        if option.flag is not None:
            value = getattr(args, option.dest)
            if option.kind is dict:
                value = parse_mapping(value, option.flags[0])
            settings[option.name] = not value if option.negate else value
    return settings


def run_train(args: argparse.Namespace) -> int:
    options, _, _ = model_options(args)
    workbench = _workbench()
    ref = workbench.prompt_ref(args.prompt) if args.prompt else None
    settings = train_settings(args)
    config = workbench.train_config(
        settings,
        options=options,
        dataset=settings["dataset"],
        expected=settings["expected"],
        mapping=settings["mapping"],
        prompt=ref.version if ref else None,
        mode=settings["mode"],
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
            if status.state not in LIVE:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        say(f"\ndetached: the run goes on (tunelab runs attach {run_id})")
        return 0
    step = status.step if "step" in status.model_fields_set else shown  # a status naming none: the last printed
    say(f"run {run_id}: {status.state} at step {step}" + (f" ({status.error})" if status.error else ""))
    return 0 if status.state in {"done", "stopped"} else 1


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
                    status.id,
                    status.state,
                    f"{status.step}/{'?' if status.total_steps is None else status.total_steps}",
                    f"{status.loss:.4f}" if status.loss is not None else "",
                    status.error or "",
                )
                for status in listed
            ],
        )
        warn([status.problem for status in listed if status.problem])
        return 0
    if not args.run:
        raise TunelabError(f"runs {args.action} needs a run id")
    run_id = runs.status(args.run).id
    if args.action == "show":
        print(json.dumps({"status": runs.status(run_id).to_dict(), "config": runs.config(run_id)}, indent=2))
    elif args.action == "attach":
        return follow(workbench, run_id)
    elif args.action == "stop":
        if args.now:
            say(workbench.control.kill_run(run_id))
        else:
            status = workbench.control.stop_and_wait(run_id, grace=args.grace)
            say(f"{run_id}: {status.state}" + (f", saved {status.last_checkpoint}" if status.last_checkpoint else ""))
    elif args.action == "cancel":
        runs.cancel(run_id)
        say(f"cancelling {run_id}")
    else:
        workbench.resume_run(run_id)
        say(f"resumed {run_id}")
        return follow(workbench, run_id)
    return 0


def add_adapters(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "merge", "export"], default="list", help="what to do")
    p.add_argument("adapter", nargs="?", help="with merge and export: a training run id or PEFT folder (or --adapter)")
    p.add_argument(
        "--out", default=None, help="with merge: the new model folder; with export: keep the merged folder there"
    )
    p.add_argument(
        "--gguf",
        default=None,
        metavar="OUT",
        help="with export: a .gguf file, or a folder for model.gguf (adapter.gguf)",
    )
    p.add_argument(
        "--gguf-type", choices=["f16", "f32"], default="f16", help="with export: the weights' type (default f16)"
    )
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="with export: the adapter alone as a GGUF LoRA (llama.cpp's --lora), not merged into its base",
    )
    p.add_argument("--ollama", action="store_true", help="with export: also write an Ollama Modelfile beside the GGUF")


def run_adapters(args: argparse.Namespace) -> int:
    from core.training.adapters import merge

    workbench = _workbench()
    if args.action == "list":
        table(
            ("run", "folder", "eval loss", "trained on"),
            [
                (a.run_id, a.path, f"{a.eval_loss:.4f}" if a.eval_loss is not None else "", a.trained_on)
                for a in workbench.adapters.listed()
            ],
        )
        warn([status.problem for status in workbench.runs.list() if status.problem])
        return 0
    options, models, _ = model_options(args)
    adapter = args.adapter or options.adapter
    base = models[0] if getattr(args, "models", None) else None
    if args.action == "export":
        return _export(workbench, args, adapter, base, options.load_kwargs())
    if not adapter or not args.out:
        raise TunelabError("adapters merge needs an adapter and --out DIR")
    out = merge(workbench.root, adapter, Path(args.out).expanduser(), base, options.load_kwargs())
    say(f"merged model written to {out} (use it with --model {out})")
    return 0


def _export(
    workbench: Workbench, args: argparse.Namespace, adapter: str | None, base: str | None, load: dict[str, Any]
) -> int:
    if not adapter or not args.gguf:
        raise TunelabError("adapters export needs an adapter and --gguf OUT")
    done = workbench.adapters.export_gguf(
        adapter,
        Path(args.gguf),
        base=base,
        load_options=load,
        gguf_type=args.gguf_type,
        adapter_only=args.adapter_only,
        ollama=args.ollama,
        merged=Path(args.out).expanduser() if args.out else None,
    )
    for note in done.notes:
        say(f"note: {note}")
    kind = "LoRA adapter" if args.adapter_only else "merged model"
    say(f"{kind} written to {done.gguf} (GGUF {args.gguf_type})")
    if done.modelfile:
        say(f"Modelfile written to {done.modelfile}: cd {done.modelfile.parent} && ollama create NAME -f Modelfile")
    if done.merged:
        say(f"merged model folder kept at {done.merged} (use it with --model {done.merged})")
    return 0
