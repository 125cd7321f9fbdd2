"""The training process's memory: it keeps freed memory for its next step, and reads its own peak.

glibc hands large blocks back to the kernel when they are freed (each block above 128 KB-32 MB is its
own mapping, and the heap is trimmed), so every step's activations and logits are page-faulted in
afresh: on CPU that made a LoRA step's elementwise ops up to 10x slower. Here every block comes from
the heap and the heap is never trimmed; the step's peak is unchanged (its own high-water mark)."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Set glibc's allocator for this process; False where the C library has no `mallopt` (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB. Linux's `ru_maxrss` carries the parent's resident size
    at fork across exec (a child of a large process reports the parent's peak); `VmHWM` is this
    process's own."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB elsewhere
