"""The `tunelab` console script: commands go to `core.cli`; no command opens the TUI."""

from __future__ import annotations

import argparse
import sys

from core.cli import main as cli_main


def open_tui(args: argparse.Namespace) -> int:
    from tui.app import TunelabApp

    options = {"allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code}
    TunelabApp(args.model, load_options=options).run()
    return 0


def main() -> int:
    return cli_main(sys.argv[1:], open_tui=open_tui)


if __name__ == "__main__":
    raise SystemExit(main())
