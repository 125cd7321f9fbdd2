"""The `tunelab` console script: commands go to `tui.cli.main`; no command opens the TUI."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.engine.options import ModelOptions


def open_tui(args: argparse.Namespace, options: ModelOptions) -> int:
    from tui.app import TunelabApp

    TunelabApp(options).run()
    return 0


def main() -> int:
    try:  # ctrl+c while the command's modules load is one line too, never a traceback
        from core.storage.paths import private_files
        from tui.cli.main import main as cli_main
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130
    private_files()
    return cli_main(sys.argv[1:], open_tui=open_tui)


if __name__ == "__main__":
    raise SystemExit(main())
