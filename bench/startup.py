"""TUI process start to first frame, against a bare Textual app with the same widget kinds."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, alternated

ROOT = Path(__file__).resolve().parent.parent


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


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as home:
        ours, bare = alternated(lambda: start_once("tunelab", home), lambda: start_once("bare", home))
    return [
        Result.paired(
            "TUI start to first frame",
            ours.scaled(1e3),
            bare.scaled(1e3),
            "ms",
            "<= 1.3x bare app",
            lambda ratio: ratio <= 1.3,
            f"tunelab {ours.spread('ms', 1e3)}, bare {bare.spread('ms', 1e3)}",
        )
    ]
