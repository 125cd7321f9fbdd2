"""How busy the machine is, so a figure measured while neighbours ran is marked unreliable instead of
being reported as a miss: a fixed calibration loop (torch matmuls on every core, the kind of work the
measures do) timed before and after each section, other processes' CPU share during the calibrations
(from /proc/stat) and during the section itself (`Watch`, from /proc/PID/stat), and the load average."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DRIFT = 0.20  # host noise: a calibration ran this much slower than the quietest one, with no process beside it
BUSY = 0.5  # a neighbour: other processes used this many cores' worth while the section ran


@dataclass
class Calibration:
    seconds: float  # the fixed loop's wall time
    others: float  # cores' worth of CPU other processes used meanwhile (0 where /proc is missing)
    load: float  # 1-minute load average

    def describe(self, quietest: float) -> str:
        return f"calibration {self.seconds / quietest:.2f}x, others {self.others:.1f} cores, load {self.load:.1f}"


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _others(before: tuple[int, int] | None, after: tuple[int, int] | None, own_s: float = 0.0) -> float:
    """Cores' worth of CPU that processes other than this one used between two /proc/stat readings."""
    if not before or not after or after[1] <= before[1]:
        return 0.0
    ticks, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    wall_s = (after[1] - before[1]) / ticks / cores  # the total counts every core's jiffies
    return max(0.0, (after[0] - before[0]) / ticks - own_s) / wall_s


def _processes() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, CPU ticks used so far)} of every process /proc shows (empty without /proc)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


class Watch:
    """Other processes' CPU while a section runs (its calibrations only see its ends: a neighbour that
    came and went in between would pass as the bench's own slowness). A thread reads /proc every
    `every` s; a process is the bench's own when this process is among its ancestors at that moment."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.ticks, self.began = every, 0, time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-watch")
        self.thread.start()

    def _run(self) -> None:
        seen = _processes()
        while not self.done.wait(self.every):
            now = _processes()
            ours = {os.getpid()}
            for pid in sorted(now):  # parents before children is not guaranteed: walk each chain up
                chain, at = [], pid
                while at in now and at not in ours and at not in chain and at > 1:
                    chain.append(at)
                    at = now[at][0]
                if at in ours:
                    ours.update(chain)
            self.ticks += sum(
                max(0, cpu - seen.get(pid, (0, 0))[1]) for pid, (_, cpu) in now.items() if pid not in ours
            )  # a process new since the last look: all its CPU is from this interval
            seen = now

    def cores(self) -> float:
        """Stop watching: cores' worth of CPU other processes used meanwhile."""
        self.done.set()
        self.thread.join()
        return self.ticks / os.sysconf("SC_CLK_TCK") / max(1e-9, time.monotonic() - self.began)


def others_busy(window: float) -> float:
    """Cores' worth of CPU that other processes used over `window` seconds while this one slept."""
    before = _busy_jiffies()
    time.sleep(window)
    return _others(before, _busy_jiffies())


def settle(limit: float = 15.0) -> None:
    """Wait (up to `limit` s) for the work a section leaves behind (a model worker or trainer shutting
    down) to end, so the calibration measures the neighbours, not the bench's own tail."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and others_busy(0.5) > BUSY:
        pass


def calibrate() -> Calibration:
    """The calibration loop in a fresh process (`_loop`), so it measures the machine: the bench process
    itself is large after the training section, and its allocator state slowed the loop by ~25% there."""
    import json
    import subprocess
    import sys

    settle()
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "bench.noise"], cwd=root, capture_output=True, text=True, timeout=300, check=True
    )
    return Calibration(**json.loads(out.stdout.strip().splitlines()[-1]))


def _loop(rounds: int = 40, runs: int = 5) -> Calibration:
    """The median of `runs` timings of a fixed matmul loop (512x512, every core): about 0.3 s on 2 cores,
    steady to within a few percent on a quiet machine."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a = torch.randn(512, 512)
    torch.mm(a, a)
    machine, mine = _busy_jiffies(), os.times()
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        for _ in range(rounds):
            torch.mm(a, a)
        timings.append(time.perf_counter() - began)
    after, mine_after = _busy_jiffies(), os.times()
    own_s = (mine_after.user + mine_after.system) - (mine.user + mine.system)
    return Calibration(statistics.median(timings), _others(machine, after, own_s), os.getloadavg()[0])


QUIET, HOST, NEIGHBOUR = "quiet", "host noise", "neighbour"


class Guard:
    """The quietest calibration seen so far is the reference. A section that ran beside another busy process
    was measured on a shared machine (`NEIGHBOUR`); one whose calibrations drifted with no process beside it
    met the host's own noise (`HOST`: other tenants, frequency changes), which slows both sides of a pair alike,
    so its figures stand where their spread says so (more pairs narrow it)."""

    def __init__(self) -> None:
        self.quietest = min(calibrate().seconds for _ in range(3))

    def check(self, before: Calibration, after: Calibration, during: float = 0.0) -> tuple[str, str]:
        """The kind of load the section met, and the one line that says it. `during`: cores' worth of other
        processes' CPU while the section ran (`Watch`)."""
        self.quietest = min(self.quietest, before.seconds, after.seconds)
        worst = max(before, after, key=lambda c: c.seconds)
        busiest = max(before.others, after.others, during)
        kind = NEIGHBOUR if busiest > BUSY else HOST if worst.seconds > (1 + DRIFT) * self.quietest else QUIET
        return kind, (
            f"{kind}: before: {before.describe(self.quietest)}; during: others {during:.1f} cores; "
            f"after: {after.describe(self.quietest)}"
        )


def _spin(stop: float) -> None:
    while time.monotonic() < stop:
        pass


class Hog:
    """`--with-noise`: keep every core busy with a spinning process each (for at most `limit` seconds,
    so a bench that dies never leaves them behind for long), to show the guard marks what it spoils."""

    def __init__(self, limit: float = 3600.0) -> None:
        stop = time.monotonic() + limit
        ctx = multiprocessing.get_context("spawn")
        self.procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)]
        for proc in self.procs:
            proc.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.join(5)


if __name__ == "__main__":
    import json
    from dataclasses import asdict

    print(json.dumps(asdict(_loop())))
