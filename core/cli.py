"""Headless entry points: `tunelab gen|history|demo` built on the same core as the TUI.

User errors print one line `tunelab: error: ...` and exit 2; Ctrl+C during `gen` cancels cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Callable, Sequence

from core import __version__, demo
from core.errors import TunelabError


def _add_model_options(p: argparse.ArgumentParser) -> None:
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
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    gen.add_argument("--no-history", action="store_true", help="do not save to history")
    gen.add_argument("--json", action="store_true", help="print the full record as JSON at the end")

    hist = sub.add_parser("history", help="list saved generations, or show one")
    hist.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    hist.add_argument("id", nargs="?")
    hist.add_argument("-n", "--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")

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
                                  "stop": args.stop})
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


def cmd_history(args: argparse.Namespace) -> int:
    from core.history import History
    from core.paths import data_dir

    history = History(data_dir())
    if args.action == "show":
        if not args.id:
            raise TunelabError("history show needs a record id")
        record = history.get(args.id)
        if record is None:
            raise TunelabError(f"no history record with id {args.id}")
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return 0
    records = history.recent(args.limit)
    for problem in history.problems:
        print(f"tunelab: warning: {problem}", file=sys.stderr)
    for rec in records:
        if args.json:
            print(json.dumps(rec, ensure_ascii=False))
        else:
            prompt = " ".join((rec.get("prompt") or "").split())[:40]
            output = " ".join((rec.get("output") or "").split())[:40]
            print(f"{rec['id']}  {rec['created_at'][:19]}  {rec.get('status', ''):9}  {prompt!r} -> {output!r}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.demo.build import BuildConfig, build

    cfg = BuildConfig() if args.steps is None else BuildConfig(steps=args.steps)
    build(Path(args.out) if args.out else demo.MODEL_DIR,
          Path(args.data_out) if args.data_out else demo.TASK_DIR, cfg,
          log=lambda line: print(line, file=sys.stderr))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "gen": cmd_gen, "history": cmd_history, "demo": cmd_demo}


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


if __name__ == "__main__":
    raise SystemExit(main())
