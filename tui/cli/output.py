"""How the command line shows things: rich tables on stdout, progress and one-line messages on stderr."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def console() -> Console:
    """stdout: as wide as the terminal, or wide enough that piped tables never wrap."""
    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else 240
    return Console(width=width, highlight=False, soft_wrap=False)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A plain table (no box), so piped output stays one row a line."""
    out = Table(
        *columns, box=None, title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold"
    )
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(out)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warn(problems: list[str]) -> None:
    """One warning line per bad file, after the output it did not stop."""
    for problem in problems:
        say(f"tunelab: warning: {problem}")


@contextmanager
def progress(what: str) -> Iterator[Any]:
    """A bar on stderr while `update(done, total)` is called; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task(what, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
