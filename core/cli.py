"""Headless entry points: `tunelab gen|eval|prompts|evals|train|runs|adapters|history|locate|demo`, on the same core as the TUI.

User errors print one line `tunelab: error: ...` and exit 2; a failed `--min-pass` exits 1;
Ctrl+C during `gen` cancels cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Callable, Sequence

from core import __version__, demo, history_cli
from core.errors import TunelabError


def _add_model_options(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("--model", action="append", dest="models", default=[], metavar="MODEL",
                       help="'demo', a local folder, or a hub id; repeat to compare models (default: demo)")
    else:
        p.add_argument("--model", default=demo.MODEL_ALIAS, help="'demo', a local folder, or a hub id")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) weights; they can run code")
    p.add_argument("--trust-remote-code", action="store_true", help="run model code shipped with a hub model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunelab", description="Prompt engineering and LoRA workbench.")
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}")
    _add_model_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser("gen", help="generate from a prompt, streaming to stdout")
    _add_model_options(gen)
    gen.add_argument("prompt", help="the prompt text ('-' reads stdin)")
    gen.add_argument("--system", default="", help="system prompt")
    mode = gen.add_mutually_exclusive_group()
    mode.add_argument("--chat", dest="mode", action="store_const", const="chat", help="apply the chat template")
    mode.add_argument("--raw", dest="mode", action="store_const", const="raw", help="send the text as is")
    gen.set_defaults(mode="auto")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--min-new-tokens", type=int, default=0, help="keep going past end-of-text (benchmarks)")
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    gen.add_argument("--no-history", action="store_true", help="do not save to history")
    gen.add_argument("--json", action="store_true", help="print the full record as JSON at the end")

    history_cli.add_parser(sub)

    ev = sub.add_parser("eval", help="run prompt variants over a dataset split and grade them")
    _add_model_options(ev, several=True)
    ev.add_argument("--prompt", action="append", default=[], metavar="P",
                    help="a prompt file (.toml) or a saved version (name, name@N, id); repeatable")
    ev.add_argument("--no-prompt", action="store_true", help="also run the items as they are (the base column)")
    ev.add_argument("--adapter", action="append", default=[], metavar="A",
                    help="a training run id or PEFT folder; adds LoRA variants next to the base ones (repeatable)")
    ev.add_argument("--dataset", default="demo", help="'demo', a folder of split files, or a .jsonl/.csv file")
    ev.add_argument("--split", default="eval", help="split to evaluate ('all' for every row)")
    ev.add_argument("--expected", default=None, help="field holding the expected answer")
    ev.add_argument("--map", action="append", default=[], metavar="VAR=FIELD", help="template variable from a field")
    ev.add_argument("--grader", default="labels", help="exact, labels[:a,b], contains[:x], not_contains:x, "
                    "regex:p, json[:schema], levenshtein[:t], chrf[:t]")
    ev.add_argument("--repeat", type=int, default=1, help="run each item N times (seed, seed+1, ...)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N items")
    ev.add_argument("--no-cache", action="store_true", help="recompute even identical calls")
    ev.add_argument("--baseline", default=None, metavar="RUN[:V]", help="compare with this run (default: the pinned one)")
    ev.add_argument("--pin", action="store_true", help="pin this run's first variant as the baseline")
    ev.add_argument("--min-pass", default=None, metavar="RATE", help="exit 1 if a variant passes less (0.8 or 80%%)")
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")

    tr = sub.add_parser("train", help="start a LoRA training run (a detached process) and follow it")
    tr.add_argument("--model", default=demo.MODEL_ALIAS)
    tr.add_argument("--dataset", default="demo")
    tr.add_argument("--split", default="train")
    tr.add_argument("--eval-split", default="eval", help="'none' to skip eval loss")
    tr.add_argument("--prompt", default=None, metavar="P", help="render examples with this prompt (file or version)")
    tr.add_argument("--mode", default="raw", choices=["auto", "chat", "raw"], help="without --prompt")
    tr.add_argument("--expected", default=None, help="field holding the answer to learn")
    for flag, kind, default in (("--lora-r", int, 16), ("--lora-alpha", int, 32), ("--lora-dropout", float, 0.05),
                                ("--learning-rate", float, 2e-3), ("--warmup-ratio", float, 0.05),
                                ("--epochs", float, 3.0), ("--max-steps", int, None), ("--batch-size", int, 16),
                                ("--grad-accum", int, 1), ("--max-seq-len", int, 256), ("--eval-every", int, 20),
                                ("--save-every", int, 20), ("--seed", int, 0)):
        tr.add_argument(flag, type=kind, default=default)
    tr.add_argument("--schedule", default="cosine", choices=["cosine", "linear", "constant"])
    tr.add_argument("--target-modules", default="all-linear", help="all-linear, or names like q_proj,v_proj")
    tr.add_argument("--modules-to-save", default="lm_head", help="comma list trained in full ('' for none)")
    tr.add_argument("--full-loss", action="store_true", help="also take loss on the prompt tokens")
    tr.add_argument("--nproc", type=int, default=1, help="processes under torchrun (DDP: gloo on CPU, nccl on GPUs)")
    tr.add_argument("--resume", default=None, metavar="RUN",
                    help="continue RUN from its last checkpoint (refused if these settings differ from its own)")
    tr.add_argument("--detach", action="store_true", help="start and return at once")

    rn = sub.add_parser("runs", help="list, show, attach to, stop, cancel or resume training runs")
    rn.add_argument("action", nargs="?", choices=["list", "show", "attach", "stop", "cancel", "resume"], default="list")
    rn.add_argument("run", nargs="?")
    rn.add_argument("--now", action="store_true", help="with stop: kill at once instead of stop-and-save")
    rn.add_argument("--grace", type=float, default=30.0, help="with stop: seconds before escalating to SIGKILL")

    ad = sub.add_parser("adapters", help="list trained adapters, or merge one into its base model")
    ad.add_argument("action", nargs="?", choices=["list", "merge"], default="list")
    ad.add_argument("adapter", nargs="?", help="training run id or PEFT folder")
    ad.add_argument("--out", default=None, help="with merge: the new model folder")
    ad.add_argument("--base", default=None, help="with merge: base model (default: the run's)")

    pr = sub.add_parser("prompts", help="list, show, diff or save prompt versions")
    pr.add_argument("action", choices=["list", "show", "diff", "save"])
    pr.add_argument("refs", nargs="*", help="versions (name, name@N, id) or, for save, a .toml file")

    evs = sub.add_parser("evals", help="list, show, pin or export eval runs")
    evs.add_argument("action", nargs="?", choices=["list", "show", "pin", "export"], default="list")
    evs.add_argument("run", nargs="?", help="run id (prefix); for pin, RUN[:V]")
    evs.add_argument("--format", default="jsonl", help="with export: jsonl or csv (one row per graded item)")

    loc = sub.add_parser("locate", help="print where the config file, data or user themes live")
    loc.add_argument("what", choices=["config", "data", "themes"])

    dem = sub.add_parser("demo", help="rebuild the demo model and demo task")
    dem.add_argument("action", choices=["build"])
    dem.add_argument("--steps", type=int, default=None, help="pre-training steps")
    dem.add_argument("--out", default=None, help="model folder (default: the shipped one)")
    dem.add_argument("--data-out", default=None, help="task folder (default: the shipped one)")
    return parser


def cmd_gen(args: argparse.Namespace) -> int:
    from core.generation import Prompt, generate
    from core.history import History
    from core.loading import load
    from core.params import GenParams
    from core.paths import data_dir
    from core.records import generation_record

    params = GenParams.from_dict({"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                                  "top_p": args.top_p, "top_k": args.top_k, "seed": args.seed,
                                  "stop": args.stop, "min_new_tokens": args.min_new_tokens})
    text = sys.stdin.read() if args.prompt == "-" else args.prompt
    loaded = load(args.model, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code)
    prompt = Prompt(text, args.system, args.mode)
    cancel = threading.Event()
    outcome: dict[str, Any] = {}
    streamed: list[str] = []

    def emit(chunk: str, _tokens: int) -> None:
        streamed.append(chunk)
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def run() -> None:
        try:
            outcome["result"] = generate(loaded, prompt, params, emit=emit, cancel=cancel)
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        cancel.set()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    sys.stdout.write("\n")
    status = "cancelled" if result["stop_reason"] == "cancelled" else "done"
    record = generation_record(model=args.model, prompt=text, system=args.system, mode=args.mode,
                               params=params.to_dict(), result=result, status=status)
    if not args.no_history:
        record["id"] = History(data_dir()).add(record)
    print(f"[{result['completion_tokens']} tokens, {result['tok_per_s']} tok/s, "
          f"{result['latency_s']:.2f}s, stop: {result['stop_reason']}]", file=sys.stderr)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    return 130 if status == "cancelled" else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.demo.build import BuildConfig, build

    cfg = BuildConfig() if args.steps is None else BuildConfig(steps=args.steps)
    build(Path(args.out) if args.out else demo.MODEL_DIR,
          Path(args.data_out) if args.data_out else demo.TASK_DIR, cfg,
          log=lambda line: print(line, file=sys.stderr))
    return 0


def _prompt_variant(ref: str, store, new_files: list):
    """A .toml file is read (and added to `new_files`, saved as a version once the command got past its
    checks, so refused input stores nothing); anything else names a saved version."""
    from pathlib import Path

    from core.prompts import read_prompt_file

    path = Path(ref)
    if path.suffix == ".toml" or path.exists():
        name, version = read_prompt_file(path)
        new_files.append((name, version))
        return name, version
    row, version = store.get(ref)
    return row["name"], version


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
    from core.evals import compare

    return compare(summary, *baseline) if baseline and baseline[0]["id"] != summary["id"] else None


def format_summary(summary: dict[str, Any], comparisons: list[dict[str, Any]] | None) -> str:
    head = (f"eval {summary['id']} · {summary['dataset']}:{summary['split']} · {summary['n_items']} items"
            f" · grader {summary['grader']}" + (f" · x{summary['repeat']}" if summary["repeat"] > 1 else "")
            + ("" if summary["status"] == "done" else f" · {summary['status']}"))
    width = max([7] + [len(v["label"]) for v in summary["variants"]])
    lines = [head, f"  #  {'variant':<{width}}    pass    95% CI        latency  tokens  vs baseline"]
    for i, v in enumerate(summary["variants"]):
        lo, hi = v["ci"]
        latency = f"{v['mean_latency_s'] * 1000:5.0f} ms" if v["mean_latency_s"] is not None else "  cached"
        tokens = f"{v['mean_completion_tokens']:6.1f}" if v["mean_completion_tokens"] is not None else "     -"
        line = (f"  {i}  {v['label']:<{width}}  {v['pass_rate'] * 100:5.1f}%  [{lo * 100:4.1f}, {hi * 100:5.1f}]"
                f"  {latency}  {tokens}")
        if comparisons:
            c = comparisons[i]
            line += f"  {c['delta'] * 100:+5.1f} (fixed {len(c['fixed'])}, broken {len(c['broken'])})"
        lines.append(line)
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from core.evals import EvalRequest, EvalRuns, LocalBackend, Variant, run_eval
    from core.paths import data_dir
    from core.prompts import PromptStore

    root = data_dir()
    store = PromptStore(root)
    models = args.models or [demo.MODEL_ALIAS]
    new_files: list = []
    prompts = ([("no prompt", None)] if args.no_prompt else []) + \
        [_prompt_variant(ref, store, new_files) for ref in args.prompt]
    adapters = [None, *args.adapter]  # base, then each LoRA: with --no-prompt and a prompt, the 2x2
    variants = [Variant(name, version, m, a) for a in adapters for name, version in prompts for m in models]
    if not variants:
        raise TunelabError("give at least one --prompt (or --no-prompt)")
    min_pass = _rate(args.min_pass) if args.min_pass is not None else None
    mapping = {}
    for pair in args.map:
        var, sep, source = pair.partition("=")
        if not sep or not var or not source:
            raise TunelabError(f"--map takes VAR=FIELD, got '{pair}'")
        mapping[var] = source
    request = EvalRequest(args.dataset, None if args.split == "all" else args.split, args.grader, args.repeat,
                          not args.no_cache, args.limit, args.expected, mapping)
    runs = EvalRuns(root)
    baseline = None
    if args.baseline:
        run, variant = _run_and_variant(args.baseline)
        baseline = (runs.load(run), variant)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            filled = done * 30 // total
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)

    summary = run_eval(root, request, variants,
                       LocalBackend(allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code),
                       on_progress=progress)
    for name, version in new_files:
        store.save(name, version)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if baseline is None:
        baseline = runs.baseline_for(summary["dataset"], summary["split"])
    comparisons = _against(summary, baseline)
    if args.pin:
        runs.pin(summary["id"])
    if args.json:
        print(json.dumps({**summary, "comparisons": comparisons}, ensure_ascii=False))
    else:
        print(format_summary(summary, comparisons))
        if baseline and comparisons:
            print(f"  vs baseline {baseline[0]['id']}:{baseline[1]} ({baseline[0]['variants'][baseline[1]]['label']})")
    failing = [v for v in summary["variants"] if min_pass is not None and v["pass_rate"] < min_pass]
    for v in failing:
        print(f"tunelab: min-pass failed: {v['label']} passed {v['pass_rate']:.1%} < {min_pass:.1%}", file=sys.stderr)
    return 1 if failing else 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.paths import data_dir
    from core.prompts import PromptStore, read_prompt_file

    store = PromptStore(data_dir())
    need = {"list": (0, 1), "show": (1, 1), "diff": (2, 2), "save": (1, 1)}[args.action]
    if not need[0] <= len(args.refs) <= need[1]:
        raise TunelabError(f"prompts {args.action} takes {need[0]}{'' if need[0] == need[1] else f' to {need[1]}'} argument(s)")
    if args.action == "list":
        for row in store.versions(args.refs[0] if args.refs else None):
            first = " ".join(row["template"].split())[:50]
            print(f"{row['name']}@{row['number']}  {row['id']}  {row['created_at'][:19]}  {first!r}")
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


def cmd_evals(args: argparse.Namespace) -> int:
    from core.evals import EvalRuns
    from core.paths import data_dir

    runs = EvalRuns(data_dir())
    if args.action == "list":
        for row in runs.list():
            best = max(row["variants"], key=lambda v: v["pass_rate"], default=None)
            top = f"best {best['pass_rate']:.1%} {best['label']}" if best else ""
            print(f"{row['id']}  {row['created_at'][:19]}  {row['dataset']}:{row['split']}  {row['status']:9}  {top}")
        return 0
    if not args.run:
        raise TunelabError(f"evals {args.action} needs a run id")
    if args.action == "pin":
        run, variant = _run_and_variant(args.run)
        doc = runs.pin(run, variant)
        print(f"pinned {doc['run']}:{doc['variant']} as the baseline for {doc['key']}")
        return 0
    summary = runs.load(args.run)
    if args.action == "export":
        from core.history_io import eval_rows, write_eval_rows

        count = write_eval_rows(eval_rows(runs.root, summary), args.format, sys.stdout)
        print(f"exported {count} graded row(s) of {summary['id']}", file=sys.stderr)
        return 0
    comparisons = _against(summary, runs.baseline_for(summary["dataset"], summary["split"]))
    print(format_summary(summary, comparisons))
    for i, c in enumerate(comparisons or []):
        if c["fixed"] or c["broken"]:
            print(f"  {i}: fixed {', '.join(c['fixed']) or '-'}; broken {', '.join(c['broken']) or '-'}")
    return 0


def _follow(runs, run_id: str) -> int:
    """Print metrics as they arrive until the run ends; Ctrl+C detaches, the run goes on."""
    import time

    offset, shown = 0, -1
    try:
        while True:
            rows, offset = runs.metrics(run_id, offset)
            for row in rows:
                eval_part = f" eval_loss {row['eval_loss']:.4f}" if row.get("eval_loss") is not None else ""
                eta = f" eta {row['eta_s']:.0f}s" if row.get("eta_s") is not None else ""
                print(f"step {row['step']} epoch {row['epoch']:.2f} loss {row['loss']:.4f}{eval_part} "
                      f"lr {row['lr']:.2e} {row['tok_s']:.0f} tok/s{eta}", flush=True)
                shown = row["step"]
            status = runs.status(run_id)
            if status["state"] not in {"created", "starting", "loading", "running"}:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"\ndetached: the run goes on (tunelab runs attach {run_id})", file=sys.stderr)
        return 0
    print(f"run {run_id}: {status['state']} at step {status.get('step', shown)}"
          + (f" ({status['error']})" if status.get("error") else ""), file=sys.stderr)
    return 0 if status["state"] in {"done", "stopped"} else 1


def cmd_train(args: argparse.Namespace) -> int:
    from core.paths import data_dir
    from core.prompts import PromptStore
    from core.training.config import TrainConfig
    from core.training.runs import Runs

    root = data_dir()
    template = system = ""
    mode = args.mode
    new_files: list = []
    store = PromptStore(root)
    if args.prompt:
        _, version = _prompt_variant(args.prompt, store, new_files)
        template, system, mode = version.template, version.system, version.mode
    targets = args.target_modules if args.target_modules == "all-linear" else \
        tuple(t.strip() for t in args.target_modules.split(",") if t.strip())
    config = TrainConfig(
        model=args.model, dataset=args.dataset, split=args.split,
        eval_split=None if args.eval_split == "none" else args.eval_split, template=template, system=system,
        mode=mode, expected=args.expected, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout, target_modules=targets,
        modules_to_save=tuple(m for m in args.modules_to_save.split(",") if m), learning_rate=args.learning_rate,
        schedule=args.schedule, warmup_ratio=args.warmup_ratio, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, grad_accum=args.grad_accum, max_seq_len=args.max_seq_len,
        eval_every=args.eval_every, save_every=args.save_every, seed=args.seed, answer_only_loss=not args.full_loss,
        nproc=args.nproc)
    runs = Runs(root)
    if args.resume:
        run_id = runs.status(args.resume)["id"]
        runs.resume(run_id, config)
        print(f"resumed training run {run_id}", file=sys.stderr)
        return 0 if args.detach else _follow(runs, run_id)
    run_id = runs.create(config)
    for name, version in new_files:
        store.save(name, version)
    runs.launch(run_id)
    print(f"started training run {run_id}", file=sys.stderr)
    return 0 if args.detach else _follow(runs, run_id)


def cmd_runs(args: argparse.Namespace) -> int:
    from core.paths import data_dir
    from core.training.runs import Runs

    runs = Runs(data_dir())
    if args.action == "list":
        for s in runs.list():
            loss = f" loss {s['loss']:.4f}" if s.get("loss") is not None else ""
            print(f"{s['id']}  {s['state']:9}  step {s.get('step', 0)}/{s.get('total_steps', '?')}{loss}"
                  + (f"  {s['error']}" if s.get("error") else ""))
        return 0
    if not args.run:
        raise TunelabError(f"runs {args.action} needs a run id")
    run_id = runs.status(args.run)["id"]
    if args.action == "show":
        print(json.dumps({"status": runs.status(run_id), "config": runs.config(run_id)}, indent=2))
    elif args.action == "attach":
        return _follow(runs, run_id)
    elif args.action == "stop":
        if args.now:
            runs.kill(run_id)
            print(f"killed {run_id}", file=sys.stderr)
        else:
            status = runs.stop_and_wait(run_id, grace=args.grace)
            print(f"{run_id}: {status['state']}" + (f", saved {status['last_checkpoint']}"
                                                   if status.get("last_checkpoint") else ""), file=sys.stderr)
    elif args.action == "cancel":
        runs.cancel(run_id)
        print(f"cancelling {run_id}", file=sys.stderr)
    else:
        runs.resume(run_id)
        print(f"resumed {run_id}", file=sys.stderr)
        return _follow(runs, run_id)
    return 0


def cmd_adapters(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.adapters import merge
    from core.paths import data_dir
    from core.training.runs import Runs

    root = data_dir()
    if args.action == "list":
        for s in Runs(root).list():
            if s["state"] == "done" and s.get("adapter"):
                loss = f"eval_loss {s['eval_loss']:.4f}" if s.get("eval_loss") is not None else ""
                print(f"{s['id']}  {Runs(root).path(s['id']) / s['adapter']}  {loss}")
        return 0
    if not args.adapter or not args.out:
        raise TunelabError("adapters merge needs an adapter and --out DIR")
    out = merge(root, args.adapter, Path(args.out).expanduser(), args.base)
    print(f"merged model written to {out} (use it with --model {out})", file=sys.stderr)
    return 0


def cmd_locate(args: argparse.Namespace) -> int:
    from core.config import config_path, themes_dir
    from core.paths import data_dir

    print({"config": config_path, "data": data_dir, "themes": themes_dir}[args.what]())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "locate": cmd_locate,
    "train": cmd_train, "runs": cmd_runs, "adapters": cmd_adapters,
    "gen": cmd_gen, "eval": cmd_eval, "prompts": cmd_prompts, "evals": cmd_evals, "history": history_cli.run,
    "demo": cmd_demo}


def main(argv: Sequence[str] | None = None,
         open_tui: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Run a command; with none, open the TUI through `open_tui` (passed in by `tui.launcher`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            if open_tui is None:
                parser.print_help()
                return 2
            return open_tui(args)
        return COMMANDS[args.command](args)
    except TunelabError as exc:
        print(f"tunelab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a data dir that is read-only, full, or not a folder
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"tunelab: error: {exc.strerror or exc}{where}; nothing was changed", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
