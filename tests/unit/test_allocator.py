"""The training process keeps freed memory: a step's activations and logits come back without being
page-faulted in afresh (each probe runs in a fresh process: the allocator's settings are per process)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

STEPS = """
import resource, sys, torch
from core.training.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
up, down, head = torch.nn.Linear(256, 1024), torch.nn.Linear(1024, 256), torch.nn.Linear(256, 8192)
def step():  # an MLP block and a 32 MB logits tensor, forward and backward
    h = torch.nn.functional.silu(up(torch.randn(8, 128, 256)))
    logits = head(down(h)).view(-1, 8192)
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 8192, (1024,))).backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, check=True
    )
    kept, count = out.stdout.split()
    return kept, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steps_after_the_first_do_not_fault_their_memory_in_again():
    kept, with_it = faults("keep")
    _, without = faults("plain")
    assert kept == "True"
    if without < 5 * 8192:  # this C library keeps the memory itself: nothing to compare
        pytest.skip(f"the default allocator faulted only {without} pages in 5 steps")
    assert with_it * 3 < without


def test_the_peak_is_this_process_own_not_its_parents():
    """A child of a large process reports its own peak (ru_maxrss would report the parent's)."""
    import torch  # noqa: F401 -- the parent grows first

    from core.training.allocator import peak_rss_mb

    ballast = bytearray(600 << 20)  # 600 MB resident in this (parent) process
    ballast[::4096] = b"x" * len(ballast[::4096])
    out = subprocess.run(
        [sys.executable, "-c", "from core.training.allocator import peak_rss_mb; print(peak_rss_mb())"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert peak_rss_mb() > 600
    assert float(out.stdout) < 300
