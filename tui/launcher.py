"""The `tunelab` console script: commands go to `tui.cli.main`; no argument opens the TUI at once (its
start never waits for the command line's modules), model options alone open it through `tui.cli.main`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.engine.options import ModelOptions


def open_tui(args: argparse.Namespace | None, options: ModelOptions) -> int:
    from tui.app import TunelabApp

    TunelabApp(options).run()
    return 0


def main() -> int:
    argv = sys.argv[1:]
    try:  # ctrl+c while the modules load is one line too, never a traceback
        from core.storage.paths import private_files
        from tui.cli.guard import guarded

        if argv:
            from tui.cli.main import main as cli_main
        else:  # the app alone: its first frame never waits for the command line's modules
            from core.engine.options import ModelOptions
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130
    private_files()
    if not argv:
        return guarded(lambda: open_tui(None, ModelOptions()))
    return cli_main(argv, open_tui=open_tui)


if __name__ == "__main__":
    raise SystemExit(main())
