"""The `tunelab` console script: commands go to `tui.cli.main`; no argument opens the TUI at once (its
start never waits for the command line's modules), model options alone open it through `tui.cli.main`."""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from core.engine.options import ModelOptions


def open_tui(args: argparse.Namespace | None, options: ModelOptions) -> int:
    from tui.app import TunelabApp

    TunelabApp(options).run()
    return 0


def main() -> int:
    code = run(sys.argv[1:])
    if code == 130:
        leave_interrupted()
    return code


def leave_interrupted() -> None:
    """Exit 130 on every ctrl+c. One that lands inside C code running Python source (some imports do) leaves
    CPython's "unhandled KeyboardInterrupt" mark set although tunelab caught it, and CPython would then end
    the process by SIGINT after a clean exit: the exit handlers run and the streams flush here, then 130."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say
            pass
    os._exit(130)


def run(argv: list[str]) -> int:
    try:  # ctrl+c while the modules load or the parser is built is one line too, never a traceback
        return start(argv)
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130


def start(argv: list[str]) -> int:
    from core.storage.paths import private_files
    from tui.cli.guard import guarded

    if argv:
        from tui.cli.main import main as cli_main
    else:  # the app alone: its first frame never waits for the command line's modules
        from core.engine.options import ModelOptions
    private_files()
    if not argv:
        return guarded(lambda: open_tui(None, ModelOptions()))
    return cli_main(argv, open_tui=open_tui)


if __name__ == "__main__":
    raise SystemExit(main())
