"""`python -m core.demo build [--steps N] [--out DIR]`: rebuild the demo model and task."""

import sys

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["demo", *sys.argv[1:]]))
