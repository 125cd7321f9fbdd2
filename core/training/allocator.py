"""The training process keeps freed memory for its next step. glibc hands large blocks back to the
kernel when they are freed (each block above 128 KB-32 MB is its own mapping, and the heap is
trimmed), so every step's activations and logits are page-faulted in afresh: on CPU that made a LoRA
step's elementwise ops up to 10x slower. Here every block comes from the heap and the heap is never
trimmed; peak RSS is unchanged (it is the step's own high-water mark either way)."""

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
