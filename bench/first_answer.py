"""Time to the first answer on a fresh data dir: `tunelab compare --train --train-with-prompt` headless, and the
TUI's "Compare on the demo task" from the first frame to the verdict screen (the model already built, as
after `make run`'s install). The headless run must be under 3 minutes, the TUI's under one.

These are absolute times (nothing else does the same work to divide by), so each comes with the machine's
load: a CPU-bound probe timed before and after, as a ratio to its quiet best; a probe slower than 1.5x
marks the figure as taken on a busy machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 180.0
TUI_LIMIT_S = 60.0
SENTI = 'name = "senti"\nmode = "raw"\ntemplate = "{{text}} Overall, this review is"\n[params]\nmax_new_tokens = 4\n'


def probe() -> float:
    """Seconds of a fixed pure-Python loop: grows when other work shares the cores."""
    began = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return time.perf_counter() - began


def headless(home: Path) -> float:
    prompt = home / "senti.toml"
    prompt.write_text(SENTI)
    env = {**os.environ, "TUNELAB_HOME": str(home / "data"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).parent / "tunelab"), "compare", "--dataset", "demo", "--prompt", str(prompt)]
    began = time.perf_counter()
    done = subprocess.run(
        [*command, "--train", "--train-with-prompt", "--json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"compare failed: {done.stderr.strip().splitlines()[-1:]}")
    return took


def in_the_tui(home: Path) -> float:
    """From the first frame (model loading, as a user sees it) to the verdict screen, on the real worker."""
    from tui.app import TunelabApp
    from tui.screens.verdict import VerdictScreen

    app = TunelabApp(home=home)

    async def drive() -> float:
        async with app.run_test(size=(120, 36)) as pilot:
            began = time.perf_counter()
            while not app.main.model_ready:
                await pilot.pause(0.1)
            app.main.action_compare_demo()
            while not isinstance(app.screen, VerdictScreen):
                if time.perf_counter() - began > 3 * LIMIT_S:
                    raise RuntimeError("no verdict after 9 minutes")
                await pilot.pause(0.2)
            return time.perf_counter() - began

    return asyncio.run(drive())


def run() -> list[Result]:
    quiet = min(probe() for _ in range(3))
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        cli = headless(Path(one))
        busy_cli = probe() / quiet
        tui = in_the_tui(Path(two))
        busy_tui = probe() / quiet
    out = []
    for measure, value, busy, limit in (
        ("compare --train --train-with-prompt, fresh data dir", cli, busy_cli, LIMIT_S),
        ("TUI first start: Compare on the demo task to verdict", tui, busy_tui, TUI_LIMIT_S),
    ):
        note = f"load probe {busy:.2f}x its quiet best" + (" (busy machine)" if busy > 1.5 else "")
        out.append(Result(measure, value, None, "s", f"<= {limit:.0f} s", value <= limit, note=note))
    return out
