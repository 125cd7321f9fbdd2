"""TUI process start to first frame, against a bare Textual app with the same widget kinds."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPEATS, Result, sample

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
        start_once("tunelab", home)  # warm the file cache for both
        start_once("bare", home)
        ours, bare = [], []
        for _ in range(REPEATS):  # interleaved, so drift hits both alike
            ours.append(start_once("tunelab", home))
            bare.append(start_once("bare", home))
    o, b = sample(ours), sample(bare)
    return [
        Result(
            "TUI start to first frame",
            o.median * 1e3,
            b.median * 1e3,
            "ms",
            "<= 1.3x bare app",
            o.median <= 1.3 * b.median,
            o.spread("ms", 1e3),
            f"bare {b.spread('ms', 1e3)}",
        )
    ]
