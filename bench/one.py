"""One bench section in a fresh process (`python -m bench.one SECTION OUT.json`): a section leaves state
behind in its process (the generation section sets torch to one thread, the training loop's heap stays
large, modules stay imported), and the next section must not measure with it (training ran at half
speed after the generation section). Writes the section's rows, or the one line saying why it failed."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

from bench.common import quiet_logs


def main(argv: list[str]) -> int:
    name, out = argv
    quiet_logs()
    try:
        got = importlib.import_module(f"bench.{name}").run()
    except Exception as exc:
        traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        Path(out).write_text(json.dumps({"error": f"{type(exc).__name__}: {first}".strip(": ")}))
        return 1
    rows = got if name == "cost_growth" else [r.to_dict() for r in got]  # cost_growth gives tables, not rows
    Path(out).write_text(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
