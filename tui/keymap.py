"""Key names a user may write in `[keys]`: Textual's own, checked before they reach `set_keymap` (which takes any
string, so a typo would silently leave an action with no key)."""

from __future__ import annotations

from functools import cache

from textual.keys import KEY_NAME_REPLACEMENTS, Keys, key_to_character

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
