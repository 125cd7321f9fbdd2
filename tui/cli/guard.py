"""How every front-end entry ends on an error: one line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from core.errors import TunelabError


def guarded(run: Callable[[], int]) -> int:
    """User errors print `tunelab: error: ...` and exit 2; Ctrl+C is one line and exit 130."""
    try:
        return run()
    except TunelabError as exc:
        print(f"tunelab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a data dir that is read-only, full, or not a folder
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"tunelab: error: {exc.strerror or exc}{where}; nothing was changed", file=sys.stderr)
        return 2
