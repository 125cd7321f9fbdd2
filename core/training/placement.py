"""Where a sweep's runs go when several train at once (`train --sweep GRID --nproc N`): one GPU each, by
`CUDA_VISIBLE_DEVICES` in the run's own process, or, with no GPU, a share of the cores each.

The GPUs are counted without torch (a front end never imports it): the parent's `CUDA_VISIBLE_DEVICES` when set
(its entries, up to the first invalid one, as CUDA reads it; ROCm's HIP honours the same variable), else the
NVIDIA driver's `/proc/driver/nvidia/gpus` entries, else its `/dev/nvidiaN` nodes. Runs at once on no GPU found
are given none (`CUDA_VISIBLE_DEVICES` empty), so "on the CPU" is where they train."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.engine.cores import usable_cores
from core.errors import TunelabError

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
DEV = Path("/dev")  # /dev/nvidia0, /dev/nvidia1, ...


@dataclass(frozen=True)
class Slot:
    """One place a run trains: `devices` is its CUDA_VISIBLE_DEVICES (None: the parent's, unchanged; empty: no
    GPU) and `threads` its OMP_NUM_THREADS."""

    devices: str | None
    threads: int

    def __str__(self) -> str:
        return f"GPU {self.devices}" if self.devices else "CPU"


def visible_gpus(environ: Mapping[str, str] = os.environ, driver: Path = NVIDIA_GPUS, nodes: Path = DEV) -> list[str]:
    """The GPUs a child may be given, as CUDA_VISIBLE_DEVICES entries (indices, or UUIDs as the user gave them)."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries: list[str] = []
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            if entry not in entries:  # one GPU named twice is one GPU
                entries.append(entry)
        return entries
    try:
        count = sum(1 for p in driver.iterdir() if p.is_dir())
    except OSError:
        count = 0
    if not count:  # no driver entries to read (a container): the device nodes
        count = sum(1 for p in nodes.glob("nvidia*") if p.name[6:].isdigit())
    return [str(i) for i in range(count)]


def slots(device: str, count: int, gpus: list[str] | None = None, cores: int | None = None) -> list[Slot]:
    """`count` places for runs at once on `device` (a run's --device): one GPU each when GPUs are visible and
    the device allows any (auto, cuda), else the cores shared out. More runs than GPUs, or several runs pinned to
    one `cuda:N`, is refused in one line: two runs on one GPU would compete for its memory."""
    cores = cores or usable_cores()
    if count == 1:
        return [Slot(None, cores)]
    gpus = visible_gpus() if gpus is None else gpus
    if device.startswith("cuda:"):
        raise _refused(count, f"{{2}} {device} pins every run to one GPU (give {{2}} cuda or auto)", "device")
    if device in ("auto", "cuda") and gpus:
        if count > len(gpus):
            raise _refused(count, f"{len(gpus)} GPU{'s are' if len(gpus) > 1 else ' is'} visible ({','.join(gpus)})")
        return [Slot(gpu, max(1, cores // count)) for gpu in gpus[:count]]
    if device == "cuda":
        raise _refused(count, "no GPU was found to spread them over (list them in CUDA_VISIBLE_DEVICES)")
    return [Slot("" if device == "auto" else None, max(1, cores // count)) for _ in range(count)]


def _refused(count: int, why: str, *fields: str) -> TunelabError:
    return TunelabError(
        f"{{0}} {count} with {{1}} trains {count} runs at once, one GPU each: {why}", "nproc", "sweep", *fields
    )
