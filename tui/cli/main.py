"""`tunelab COMMAND ...`: the command line, a front end over `core.workbench` like the Textual app.

User errors print one line `tunelab: error: ...` and exit 2; a failed `--min-pass` exits 1; Ctrl+C is
one line and exit 130. The model options are one set, accepted before or after the command by every
command that loads a model, and refused (never ignored) by the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from core import __version__
from core.engine.options import ModelOptions
from core.errors import TunelabError
from tui.cli import commands, history
from tui.cli.guard import guarded
from tui.cli.options import MODEL_COMMANDS, add_model_options, given_model_flags, model_options


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other tunelab error. No abbreviated flags: `--mode`
    would silently be `--model` where a command has no `--mode`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"tunelab: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


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

    def run() -> int:
        given = given_model_flags(args)
        if given and args.command not in MODEL_COMMANDS:
            raise TunelabError(f"{given[0]} does not apply to `{args.command}` (it loads no model)")
        if args.command is None:
            if open_tui is None:
                parser.print_help()
                return 2
            return open_tui(args, model_options(args)[0])
        return RUNNERS[args.command](args)

    return guarded(run)
