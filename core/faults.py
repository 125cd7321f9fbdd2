"""Faults a test injects into a tunelab process (`TUNELAB_FAULTS`) instead of provoking them.

Whether eight steps at a high learning rate diverge depends on the CPU's floating-point paths, and a
full disk or a hung worker on the machine: a test that provokes them passes on one host and fails on
another. `TUNELAB_FAULTS` holds comma-separated `name=value` pairs (`nan_loss_at_step=3`); child
processes inherit it. Unset, as it always is outside tests, nothing changes. The faults: `nan_loss_at_step`
and `hold_at_step` (training), `hold_served_stream_after` (a served stream waits after N pieces for a
cancel, so an `esc` lands mid-stream however fast the server answers).
"""

import os

ENV = "TUNELAB_FAULTS"


def fault(name: str) -> str | None:
    """The value injected for `name` ("1" when given bare), or None when that fault is not injected."""
    for part in os.environ.get(ENV, "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip() or "1"
    return None


def fault_int(name: str) -> int | None:
    value = fault(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
