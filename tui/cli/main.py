"""`tunelab COMMAND ...`: the command line, a front end over `core.workbench` like the Textual app.

User errors print one line `tunelab: error: ...` and exit 2; a failed `--min-pass` exits 1; Ctrl+C is
one line and exit 130. The model options are one set, accepted before or after the command by every
command that loads a model, and refused (never ignored) by the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from core import __version__
from core.engine.options import DTYPES, ModelOptions
from core.errors import TunelabError
from tui.cli import commands, history

MODEL_FLAGS = {
    "models": "--model",
    "adapters": "--adapter",
    "allow_pickle": "--allow-pickle",
    "trust_remote_code": "--trust-remote-code",
    "dtype": "--dtype",
    "device": "--device",
}
MODEL_COMMANDS = {None, "gen", "eval", "train", "adapters"}  # None: the TUI


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other tunelab error."""

    def error(self, message: str) -> NoReturn:
        print(f"tunelab: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model option set; SUPPRESS defaults, so a value given before the command survives the
    subcommand's parse and `given_model_flags` can tell what the user typed."""
    group = parser.add_argument_group("model options (before or after the command)")
    none = argparse.SUPPRESS
    group.add_argument(
        "--model",
        dest="models",
        action="append",
        default=none,
        metavar="MODEL",
        help="'demo' (default), a local folder or a hub id; eval takes several",
    )
    group.add_argument(
        "--adapter",
        dest="adapters",
        action="append",
        default=none,
        metavar="A",
        help="a training run id or any PEFT adapter folder; eval takes several",
    )
    group.add_argument(
        "--allow-pickle",
        action="store_true",
        default=none,
        help="allow pickle (.bin) weights, which can run code when loaded",
    )
    group.add_argument(
        "--trust-remote-code", action="store_true", default=none, help="run model code shipped with a hub model"
    )
    group.add_argument("--dtype", choices=DTYPES, default=none, help="weights dtype (default: auto)")
    group.add_argument("--device", default=none, help="auto (default), cpu, cuda, cuda:N or mps")


def given_model_flags(args: argparse.Namespace) -> list[str]:
    return [flag for dest, flag in MODEL_FLAGS.items() if hasattr(args, dest)]


def model_options(
    args: argparse.Namespace, *, several_models: bool = False, several_adapters: bool = False
) -> tuple[ModelOptions, list[str], list[str]]:
    """The options, plus every model and adapter named (eval compares several)."""
    models: list[str] = getattr(args, "models", None) or ["demo"]
    adapters: list[str] = getattr(args, "adapters", None) or []
    if len(models) > 1 and not several_models:
        raise TunelabError(f"{args.command or 'tunelab'} takes one --model, got {len(models)}")
    if len(adapters) > 1 and not several_adapters:
        raise TunelabError(f"{args.command or 'tunelab'} takes one --adapter, got {len(adapters)}")
    options = ModelOptions(
        models[0],
        adapters[0] if adapters else None,
        bool(getattr(args, "allow_pickle", False)),
        bool(getattr(args, "trust_remote_code", False)),
        getattr(args, "dtype", "auto"),
        getattr(args, "device", "auto"),
    )
    return options, models, adapters


def build_parser() -> Parser:
    parser = Parser(
        prog="tunelab", description="Prompt engineering and LoRA workbench. With no command, opens the app."
    )
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}")
    add_model_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (helptext, add) in commands.COMMANDS.items():
        p = sub.add_parser(
            name, help=helptext, description=helptext, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if name in MODEL_COMMANDS:
            add_model_options(p)
        add(p)
    history.add_parser(sub)
    return parser


RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {**commands.RUNNERS, "history": history.run}


def main(
    argv: Sequence[str] | None = None, open_tui: Callable[[argparse.Namespace, ModelOptions], int] | None = None
) -> int:
    """Run a command; with none, open the TUI through `open_tui` (passed in by `tui.launcher`)."""
    parser = build_parser()
    args = parser.parse_args(history.normalize(list(sys.argv[1:] if argv is None else argv)))
    try:
        given = given_model_flags(args)
        if given and args.command not in MODEL_COMMANDS:
            raise TunelabError(f"{given[0]} does not apply to `{args.command}` (it loads no model)")
        if args.command is None:
            if open_tui is None:
                parser.print_help()
                return 2
            return open_tui(args, model_options(args)[0])
        return RUNNERS[args.command](args)
    except TunelabError as exc:
        print(f"tunelab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a data dir that is read-only, full, or not a folder
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"tunelab: error: {exc.strerror or exc}{where}; nothing was changed", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
