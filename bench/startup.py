"""TUI process start to first frame, against a bare Textual app with the same widget kinds."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, alternated

ROOT = Path(__file__).resolve().parent.parent


LAUNCHES = 3  # per sample: one launch alone swings by tens of ms on a shared machine


def compiled() -> None:
    """An installed app starts from bytecode (pip compiles it); a checkout run with
    PYTHONDONTWRITEBYTECODE would recompile every tunelab module on every start, which the bare app
    (all in site-packages, compiled) never does."""
    import compileall

    for package in ("core", "tui"):
        compileall.compile_dir(ROOT / package, quiet=1)


def start(which: str, home: str) -> float:
    """The median of a few launches: one sample of `alternated`."""
    return statistics.median(start_once(which, home) for _ in range(LAUNCHES))


def start_once(which: str, home: str) -> float:
    env = {**os.environ, "TUNELAB_HOME": home, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "bench.start_probe", which, repr(t0)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"start probe {which} failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def import_times(top: int = 12) -> dict:
    """What importing the app costs, module by module (`python -X importtime`): the `top` modules by their
    own time, as a table for the report, and the whole import."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tui.app"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = []
    for line in out.stderr.splitlines():
        own, total, name = (line.removeprefix("import time:").split("|") + ["", ""])[:3]
        if own.strip().isdigit() and total.strip().isdigit():
            modules.append((name.strip(), int(own) / 1e3, int(total) / 1e3))
    whole = next((t for n, _, t in modules if n == "tui.app"), 0.0)
    heaviest = sorted(modules, key=lambda m: -m[1])[:top]
    return {
        "title": f"Importing the app: {whole:.0f} ms; the {top} modules with the most own time",
        "columns": ["module", "own ms", "with its imports, ms"],
        "rows": [[n, f"{own:.1f}", f"{total:.1f}"] for n, own, total in heaviest],
    }


def run() -> list[Result]:
    compiled()
    with tempfile.TemporaryDirectory() as home:
        ours, bare = alternated(lambda: start("tunelab", home), lambda: start("bare", home))
    row = Result.paired(
        "TUI start to first frame",
        ours.scaled(1e3),
        bare.scaled(1e3),
        "ms",
        "<= 1.3x bare app",
        lambda ratio: ratio <= 1.3,
        f"each sample the median of {LAUNCHES} launches, from bytecode; tunelab {ours.spread('ms', 1e3)}, "
        f"bare {bare.spread('ms', 1e3)}",
    )
    row.extra["table"] = import_times()
    return [row]
