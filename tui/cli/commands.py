"""The commands: each gathers its flags, calls `core.workbench.Workbench` and prints the answer."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import demo
from core.engine.prompt import Prompt
from core.storage.paths import data_dir
from tui.cli.evaluating import (
    add_compare,
    add_eval,
    add_evals,
    run_compare,
    run_eval,
    run_evals,
)
from tui.cli.optimizing import add_optimize, run_optimize
from tui.cli.options import model_options
from tui.cli.options import workbench as _workbench
from tui.cli.output import say
from tui.cli.pace import Pace
from tui.cli.prompting import add_prompts, run_prompts
from tui.cli.serving import add_serve, run_serve
from tui.cli.training import add_adapters, add_runs, add_train, run_adapters, run_runs, run_train

Adder = Callable[[argparse.ArgumentParser], None]


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
    from core.engine.endpoints import shown
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

    pace = Pace(len(text))

    def emit(chunk: str, _tokens: int) -> None:
        pace.beat()
        outcome["shown"] = True
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def work() -> None:
        try:
            outcome["result"] = workbench.generate_here(
                options, prompt, params, emit=emit, cancel=cancel, on_loaded=pace.start
            )
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    try:
        while not done.wait(0.1):
            if (stuck := pace.late()) is not None:
                say(f"tunelab: error: the model has not answered for {stuck:.0f} s (stuck in a library call?); stopped")
                return 3
    except KeyboardInterrupt:  # the first ctrl+c cancels (a model still loading is cancelled when loaded)
        cancel.set()
        done.wait()
    if "error" in outcome:
        if outcome.get("shown"):  # the error's line starts a line of its own, under what was shown
            sys.stdout.write("\n")
            sys.stdout.flush()
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
        say(f"note: model {shown(options.model)}: {result['note']}")
    say(
        f"[{result['completion_tokens']} tokens, {result['tok_per_s']} tok/s, "
        f"{result['latency_s']:.2f}s, stop: {result['stop_reason']}]"
    )
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    return 130 if status == "cancelled" else 0


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
    "adapters": (
        "list trained adapters, merge one into its base model, or export one as GGUF (llama.cpp, Ollama)",
        add_adapters,
    ),
    "optimize": (
        "search the prompt arm on the dev rows (demonstrations, instructions) and judge the best",
        add_optimize,
    ),
    "prompts": ("list, show, diff or save prompt versions; export or import them as TOML files", add_prompts),
    "evals": ("list, show, pin or export eval runs", add_evals),
    "serve": ("the app in a browser: open the printed URL (this machine only, unless --public)", add_serve),
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
    "optimize": run_optimize,
    "prompts": run_prompts,
    "evals": run_evals,
    "serve": run_serve,
    "locate": run_locate,
    "demo": run_demo,
}
