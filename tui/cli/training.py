"""`train`, `runs` and `adapters`: LoRA runs started as detached processes, followed, and merged."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.engine.prompt import FOLD_NOTE
from core.errors import TunelabError
from core.training.config import TRAIN_OPTIONS, TrainConfig
from core.training.options import Option
from core.training.sweeps import MAX_RUNS
from core.workbench.service import Workbench
from core.workbench.sweeping import SweepResult, SweepWatcher
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import say, table, warn
from tui.cli.parsing import parse_mapping

if TYPE_CHECKING:
    from core.storage.schemas import RunStatus


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
    sweep_flags(
        p,
        'one run per combination, then the best on dev: "learning_rate=1e-4,3e-4 lora_r=8,16" (keys: the training '
        "options' names; the other flags set the rest); one after another, or --nproc N at once, one GPU each "
        "(without GPUs, the cores shared out)",
    )


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
    if args.sweep is not None:
        return run_sweep(workbench, config, args, [ref] if ref else [])
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


class Printer:
    """A run's notes (each once) and metric rows, printed as they arrive, and its end in a line or two."""

    def __init__(self, workbench: Workbench, run_id: str, model: str | None = None, tagged: bool = False) -> None:
        self.workbench, self.run_id, self.model = workbench, run_id, model
        self.offset, self.shown, self.said = 0, -1, set[str]()
        self.tag = [run_id] if tagged else []  # several runs printing at once: each line says whose

    def new(self, *_: object) -> None:
        from core.training.runs import step_parts

        for note in self.workbench.runs.notes(self.run_id):
            if note not in self.said:
                self.said.add(note)
                shown = f"model {self.model}: {note}" if self.model and note == FOLD_NOTE else note
                say(" ".join(["note:", *(f"{tag}:" for tag in self.tag), shown]))
        rows, self.offset = self.workbench.runs.metrics(self.run_id, self.offset)
        for row in rows:
            print(" ".join([*self.tag, f"step {row['step']}", *step_parts(row, skip=("grad_norm",))]), flush=True)
            self.shown = row["step"]

    def end(self, status: RunStatus) -> None:
        step = status.step if "step" in status.model_fields_set else self.shown  # none in the status: the last shown
        say(f"run {self.run_id}: {status.state} at step {step}" + (f" ({status.error})" if status.error else ""))
        if status.early_stop:
            say(status.early_stop)


def follow(workbench: Workbench, run_id: str, model: str | None = None) -> int:
    """Print metrics (and each note about the run's rows, once) as they arrive until the run ends; Ctrl+C
    detaches, the run goes on."""
    printer = Printer(workbench, run_id, model)
    try:
        status = workbench.control.wait_ended(run_id, printer.new)
    except KeyboardInterrupt:
        say(f"\ndetached: the run goes on (tunelab runs attach {run_id})")
        return 0
    printer.end(status)
    return 0 if status.state in {"done", "stopped"} else 1


class SweepPrinter(SweepWatcher):
    """Each run of a sweep followed as `train` follows one, under a line saying which it is; with several runs
    at once, each line of a run starts with its id."""

    def __init__(self, workbench: Workbench, model: str, at_once: int = 1) -> None:
        self.workbench, self.model, self.at_once = workbench, model, at_once
        self.printers: dict[str, Printer] = {}

    def started(self, run_id: str, index: int, total: int, values: dict[str, Any]) -> None:
        say(f"sweep run {index + 1}/{total}: {run_id} " + " ".join(f"{k}={v}" for k, v in values.items()))
        self.printers[run_id] = Printer(self.workbench, run_id, self.model, tagged=self.at_once > 1)

    def status(self, run_id: str, status: RunStatus) -> None:
        self.printers[run_id].new()

    def ended(self, run_id: str, status: RunStatus) -> None:
        self.printers.pop(run_id).end(status)


def run_sweep(workbench: Workbench, config: TrainConfig, args: argparse.Namespace, prompts: list[Any]) -> int:
    """The grid's runs, one after another or `--nproc` at once, followed; a table of them and the best on dev."""
    if args.detach or args.resume or args.node_rank:
        raise TunelabError("--sweep follows its runs to the end: it takes no --detach, --resume or --node-rank")
    plan = workbench.sweeps.plan(config, args.sweep, allow_large=args.yes)
    workbench.check_targets(config)  # target_modules is no sweep key: the base's hold for every run
    say(f"sweep {plan.id}: {plan.size} runs, {plan.grid}, {plan.pace}")
    watcher = SweepPrinter(workbench, config.model, len(plan.slots))
    try:
        result = workbench.sweeps.run(plan, watcher, prompts)
    except KeyboardInterrupt:
        going = list(watcher.printers)
        tail = f"; {', '.join(going)} going on (tunelab runs stop {going[0]} --sweep stops them)" if going else ""
        say(f"\nsweep {plan.id} interrupted: the runs not started yet never will{tail}")
        return 0
    if result.stopped:
        say(f"sweep {plan.id} stopped after {len(result.ended)} of {plan.size} runs: the rest never started")
    show_sweep(result)
    if result.best is None:
        say(f"sweep {plan.id}: no run finished with an eval loss or pass rate, so none is named best")
        return 1
    run_id, metric, value = result.best
    say(f"best on dev: {run_id} ({metric} {value:.4g}; use it as --adapter {run_id})")
    return 0


def show_sweep(result: SweepResult) -> None:
    plan = result.plan
    table(
        ("run", *(name for name, _ in plan.grid.axes), "state", "step", "eval loss", "pass rate"),
        [
            (
                run_id,
                *(str(values[name]) for name, _ in plan.grid.axes),
                status.state,
                str(status.step),
                "" if status.eval_loss is None else f"{status.eval_loss:.4f}",
                "" if status.pass_rate is None else f"{status.pass_rate:.0%}",
            )
            for run_id, values, status in result.ended
        ],
        title=f"sweep {plan.id}",
    )


def sweep_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--sweep", default=None, metavar="GRID", help=what)
    p.add_argument("--yes", action="store_true", help=f"with --sweep: run a grid of more than {MAX_RUNS} runs")


def add_compare_sweep(p: argparse.ArgumentParser) -> None:
    sweep_flags(
        p,
        'with --train: the LoRA as is swept over a grid ("learning_rate=1e-4,3e-4 lora_r=8,16"), one run after '
        "another, and the best on dev judged; every run of the sweep counts as a LoRA tried",
    )


def compare_swept(args: argparse.Namespace, workbench: Workbench, plan: Any) -> Any:
    """`compare --sweep`: the sweep run first (followed as `train --sweep` follows it), its best in the plan."""
    if args.sweep is None:
        return plan
    watcher = SweepPrinter(workbench, plan.options.model)
    swept, result = workbench.sweeps.swept(plan, args.sweep, watcher, allow_large=args.yes)
    show_sweep(result)
    run_id, metric, value = result.best  # type: ignore[misc]
    say(f"best on dev: {run_id} ({metric} {value:.4g}): the comparison judges it")
    return swept


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
    p.add_argument(
        "--sweep", action="store_true", help="with stop: the whole sweep of RUN: its live runs stop, no more start"
    )
    p.add_argument("--grace", type=float, default=30.0, help="with stop: seconds before escalating to SIGKILL")


def run_runs(args: argparse.Namespace) -> int:
    workbench = _workbench()
    runs = workbench.runs
    if args.action == "list":
        from core.training.sweeps import grouped

        listed = runs.list()
        table(
            ("run", "state", "step", "loss", "sweep", "note"),
            [
                (
                    status.id,
                    status.state,
                    f"{status.step}/{'?' if status.total_steps is None else status.total_steps}",
                    f"{status.loss:.4f}" if status.loss is not None else "",
                    f"{sweep['id']} {sweep.get('index')}/{sweep.get('size')}" if sweep else "",
                    status.error or status.early_stop or "",
                )
                for status, sweep in grouped(runs, listed)  # a sweep's runs together
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
    elif args.action == "stop" and args.sweep:
        stop_sweep(workbench, run_id, args.grace, args.now)
    elif args.action == "stop":
        if args.now:
            say(workbench.control.kill_run(run_id))
        else:
            said_stopped(run_id, workbench.control.stop_and_wait(run_id, grace=args.grace))
    elif args.action == "cancel":
        runs.cancel(run_id)
        say(f"cancelling {run_id}")
    else:
        workbench.resume_run(run_id)
        say(f"resumed {run_id}")
        return follow(workbench, run_id)
    return 0


def stop_sweep(workbench: Workbench, run_id: str, grace: float, now: bool) -> None:
    """The whole sweep of `run_id`: no more of it starts, and each live run is followed to its stop (killed once
    `grace` passes, or at once with `now`), as `runs stop` follows one."""
    sweep_id, asked = workbench.sweeps.stop(run_id)
    stopping = f"{'killing' if now else 'stopping'} {', '.join(asked)}" if asked else "none was live"
    say(f"sweep {sweep_id}: no more of its runs start; {stopping}")
    for member in asked:
        if now:
            say(workbench.control.kill_run(member))
        else:
            said_stopped(member, workbench.control.wait_stopped(member, grace))


def said_stopped(run_id: str, status: RunStatus) -> None:
    say(f"{run_id}: {status.state}" + (f", saved {status.last_checkpoint}" if status.last_checkpoint else ""))


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
