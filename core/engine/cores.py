"""The cores this process may run on: its CPU affinity (a container, `taskset`, a test worker pinned to one
core), not every core of the host, so "all cores" never means more threads than cores it can use."""

from __future__ import annotations

import os


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
