"""`python -m core.training RUN_DIR [--resume]`: the body of one training run's child process."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from core.errors import TunelabError
from core.storage import runfolders
from core.storage.paths import private_files, refused_link
from core.training import runs
from core.training.allocator import keep_freed_memory


def main(argv: list[str]) -> int:
    private_files()
    keep_freed_memory()  # process-wide allocator settings: set by the process, not by the loop it runs
    run_dir = Path(argv[0])
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 holds it for the group
    if first_rank and not runs.hold_trainer_lock(run_dir):  # another trainer owns this folder: hands off
        print(f"tunelab: error: another trainer is already writing {run_dir}", flush=True)
        return 2
    if "LOCAL_RANK" in os.environ:
        runs.record_rank(run_dir, os.environ.get("RANK", "0"))
    status = runs.StatusWriter(run_dir)
    try:
        for name in (runfolders.CHECKPOINTS, runfolders.ADAPTER):  # before seconds of imports and loading
            if (run_dir / name).is_symlink():
                raise refused_link(run_dir / name)
        from core.training.loop import train

        train(run_dir, resume="--resume" in argv[1:])
    except TunelabError as exc:
        status.last_word(state="failed", error=str(exc))
        _log(f"tunelab: error: {exc}")
        return 2
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "out of memory" in message.lower() or type(exc).__name__ == "OutOfMemoryError":
            message = f"out of memory: lower batch_size or max_seq_len, or raise grad_accum ({message})"
        status.last_word(state="failed", error=f"{type(exc).__name__}: {message}")  # first: the log may be full
        _log(traceback.format_exc())
        return 1
    (run_dir / runs.RESERVE_FILE).unlink(missing_ok=True)  # ended as it should: no last word to keep room for
    return 0


def _log(text: str) -> None:
    """To the run's log, which a full disk may refuse: the status already holds the reason."""
    try:
        print(text, flush=True)
    except OSError:
        pass


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
