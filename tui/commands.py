"""What the palette (ctrl+p) offers, declared where each action lives, never listed a second time.

- A screen's keys: every `Binding` it declares with an `id` and a description is an entry, named
  `screen: description` (`main: Run`), its help the binding's tooltip, with its key as the keymap has it.
- `Bind` is a `Binding` that also names itself in the palette (`palette="prompt: Run the prompt"`). The app's
  and a pane's keys are entries only when they are a `Bind` (a pane's key acts on what it has under its
  cursor; the palette offers the ones that make sense from anywhere).
- A `Command` is an entry with no key: a node offers them from `palette_commands()` (one per LoRA adapter,
  the demo comparison, restarting the model worker).

`tui.palette` reads them off the app, the screen on top and every node on it. This module is cheap to
import (the main screen's, before the first frame); the palette itself is imported when it first opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from textual.binding import Binding


class Command(NamedTuple):
    """One palette entry: `group: what it does`, its help (`<binding-id>` is written as that key), what it runs."""

    name: str
    help: str
    run: Callable[[], object]


@dataclass(frozen=True)
class Bind(Binding):
    """A key that names itself in the palette: `palette` is its `group: name` there, `tooltip` its help (the
    footer shows it too, on hover)."""

    palette: str = ""


@runtime_checkable
class OffersCommands(Protocol):
    """A node with palette entries of its own, beside its keys."""

    def palette_commands(self) -> Iterable[Command]: ...
