"""Run the benchmarks (`python -m bench [SECTION...] [--with-noise]`), write `bench/results/latest.json`,
`latest.md` and the README's table. Each section runs in a fresh process, between two calibrations of the
machine, and is run again while it was busy; `--with-noise` keeps every core busy to show that guard at work."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import REPEATS, quiet_logs
from bench.noise import NEIGHBOUR, QUIET, Guard, Hog, Watch, calibrate
from bench.report import LATEST, RESULTS, write

MEASURES = (
    "startup", "generation", "training", "limits", "memory", "history_scale", "worker_memory", "first_answer",
    "served", "shots",
)  # fmt: skip


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "cpu",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


RERUNS = 2  # a section measured on a busy machine is run again up to this many times


class SectionFailed(Exception):
    """A section's process ended without rows; the message is its one line (the traceback is above it)."""


def isolated(name: str, pairs: int = REPEATS) -> list[dict]:
    """Run one measure module in a fresh process (`bench.one`), with `pairs` pairs, and return what it made."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        env = {**os.environ, "BENCH_PAIRS": str(pairs)}
        code = subprocess.run([sys.executable, "-m", "bench.one", name, str(out)], env=env).returncode
        got = json.loads(out.read_text()) if out.exists() else {"error": f"its process exited with {code}"}
    if "error" in got:
        raise SectionFailed(got["error"])
    return got["rows"]


def judged(row: dict, kind: str) -> dict:
    """Whether a row stands: not beside a neighbour process; on host noise or with scattered pairs, only
    where its whole spread is on one side of the target (both sides of a pair were slowed alike)."""
    shaky = kind != QUIET or row.get("steady") is False
    doubtful = kind == NEIGHBOUR or (shaky and bool(row.get("crosses")))
    why = kind if kind == NEIGHBOUR or not doubtful else f"{kind}, pair ratios scattered across the target"
    return {**row, "reliable": not doubtful, "noise": why if doubtful else kind}


def section(name: str, guard: Guard) -> tuple[list[dict], list[dict]]:
    """Run one measure module under the guard. Beside a neighbour it is run again as it was; on host noise a
    row whose spread crosses its target is run again with twice the pairs; then such rows are unreliable."""
    pairs = REPEATS
    for attempt in range(RERUNS + 1):
        before = calibrate()
        watch = Watch()
        out = isolated(name, pairs)
        during = watch.cores()
        kind, load = guard.check(before, calibrate(), during)
        if name == "cost_growth":
            return [], out
        stamp = {"section": name, "date": date.today().isoformat(), "machine": machine(), "load": load, "pairs": pairs}
        rows = [judged({**r, **stamp}, kind) for r in out]
        doubtful = [r["name"] for r in rows if not r["reliable"]]
        if not doubtful:
            return rows, []
        if kind != NEIGHBOUR:
            pairs *= 2
        print(
            f"bench: {name}: {load}; doubtful: {', '.join(doubtful)}; attempt {attempt + 1} of {RERUNS + 1}",
            file=sys.stderr,
        )
    return rows, []


def failed(name: str, why: str) -> list[dict]:
    """A section that could not run: one row saying why, so the table never silently drops it."""
    return [{"name": name, "value": None, "baseline": None, "ratio": None, "unit": "", "target": "-", "met": None,
             "spread": "", "note": why, "reliable": None, "section": name, "date": date.today().isoformat()}]  # fmt: skip


def merged(previous: dict, rows: list[dict], ran: set[str], growth: list[dict]) -> dict:
    """This run's rows replace those of the sections it ran; the other sections keep their last figures."""
    before = previous.get("machine")  # rows kept from an earlier run name the machine they ran on
    kept = [{"machine": before, **r} for r in previous.get("results", []) if r.get("section") not in ran]
    rows = [{**r, "machine": machine()} for r in rows]
    order = {name: i for i, name in enumerate([*MEASURES, "cost_growth"])}
    results = sorted([*kept, *rows], key=lambda r: order.get(r.get("section", ""), len(order)))
    return {
        "machine": machine(),
        "dates": sorted({r["date"] for r in results if r.get("date")}),
        "results": results,
        "cost_growth": growth or previous.get("cost_growth", []),
    }


def main(argv: list[str]) -> int:
    quiet_logs()
    noise = "--with-noise" in argv
    wanted = [a for a in argv if not a.startswith("--")] or [*MEASURES, "cost_growth"]
    began = time.monotonic()
    guard = Guard()  # the quiet reference, taken before any noise starts
    hog = Hog() if noise else None
    rows, growth = [], []
    try:
        for name in wanted:
            t0 = time.monotonic()
            print(f"bench: {name}…", file=sys.stderr, flush=True)
            try:
                got, grown = section(name, guard)
                rows += got
                growth = grown or growth
            except SectionFailed as exc:
                rows += failed(name, str(exc))
            print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if hog:
            hog.stop()
    RESULTS.mkdir(exist_ok=True)
    previous = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    payload = merged(previous, rows, set(wanted), growth)
    LATEST.write_text(json.dumps(payload, indent=2) + "\n")
    print(write(payload))
    missed = [r["name"] for r in rows if r["met"] is False and r["reliable"]]
    shaky = [f"{r['name']} ({r.get('noise')})" for r in rows if r["reliable"] is False]
    print(
        f"{len(rows)} rows in {time.monotonic() - began:.0f} s"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + (f"; unreliable: {', '.join(shaky)}" if shaky else "")
    )
    return 1 if any(r["value"] is None for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
