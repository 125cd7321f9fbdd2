"""How every front-end entry ends on an error: one line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from core.errors import TunelabError


def guarded(run: Callable[[], int]) -> int:
    """User errors print `tunelab: error: ...` and exit 2; Ctrl+C is one line and exit 130."""
    try:
        return run()
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (TunelabError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return 2


def flag(field: str) -> str:
    """A core field as the command line names it: `train_with_prompt` is `--train-with-prompt`."""
    return "--" + field.replace("_", "-")


def error_line(exc: TunelabError | OSError) -> str:
    """The one line for a user error, or an OS error (a data dir that is read-only, full, not a folder)."""
    if isinstance(exc, TunelabError):
        return f"tunelab: error: {exc.worded(flag)}"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"tunelab: error: {exc.strerror or exc}{where}; nothing was changed"
