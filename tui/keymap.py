"""Keys: the names a user may write in `[keys]` (Textual's own, checked before they reach `set_keymap`, which
takes any string, so a typo would silently leave an action with no key), every binding id there is, and
the keys help and the palette show, read from the bindings and the keymap (never typed into prose)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS, Keys, key_to_character

if TYPE_CHECKING:
    from textual.app import App

MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}


@cache
def _named() -> frozenset[str]:
    return frozenset({k.value.rsplit("+", 1)[-1] for k in Keys} | set(KEY_NAME_REPLACEMENTS.values()))


def valid_key(spec: str) -> bool:
    """`ctrl+r`, `f5`, `shift+tab`, `exclamation_mark`, `a`: modifiers, then one key Textual knows."""
    *modifiers, key = spec.split("+")
    if not key or any(m not in MODIFIERS for m in modifiers):
        return False
    return len(key) == 1 or key in _named() or key_to_character(key) is not None


def bad_keys(value: str) -> list[str]:
    """The key names in a `[keys]` value (`"f5,ctrl+e"`) that are not keys."""
    return [spec for spec in value.split(",") if not valid_key(spec)]


HINT = re.compile(r"<([a-z][a-z0-9-]*)>")  # `<run>` in help prose: the key binding id `run` answers to now


@cache
def binding_owners() -> tuple[type, ...]:
    """Every class in tui.screens and tui.widgets (and the app) that declares its own BINDINGS: found by
    importing the packages, never listed by hand, so a new screen's keys are remappable at once."""
    import importlib
    import pkgutil

    import tui.screens
    import tui.widgets
    from tui.app import TunelabApp

    owners: list[type] = [TunelabApp]
    for package in (tui.screens, tui.widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            owners += [
                c for c in vars(module).values()
                if isinstance(c, type) and c.__module__ == module.__name__ and "BINDINGS" in vars(c)
            ]  # fmt: skip
    return tuple(owners)


def binding_ids() -> set[str]:
    """Every binding id a user may remap in config.toml's [keys] (it imports every screen: the keymap is
    checked after the first frame)."""
    return {b.id for o in binding_owners() for b in getattr(o, "BINDINGS", ()) if isinstance(b, Binding) and b.id}


def key_hint(app: App, binding_id: str, owners: Iterable[type]) -> str:
    """The key `binding_id` answers to now, the user's keymap first, as the footer writes it."""
    keymap: dict[str, str] = getattr(app, "_keymap", {})
    for owner in owners:
        for binding in getattr(owner, "BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id == binding_id:
                key = keymap.get(binding_id, binding.key).split(",")[0].strip()
                return app.get_key_display(replace(binding, key=key))
    return binding_id


def with_keys(app: App, text: str, owners: Iterable[type]) -> str:
    """Help prose with each `<binding-id>` written as the key it has now (so a remapped key reads remapped)."""
    owners = list(owners)
    return HINT.sub(lambda m: key_hint(app, m.group(1), owners), text)
