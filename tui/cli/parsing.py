"""The front ends' text forms of a dataset selection: `VAR=FIELD` pairs (`--map`), and the TUI's data field
`SPEC [expected=FIELD] [VAR=FIELD ...]`."""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import TunelabError


def parse_mapping(pairs: Iterable[str], what: str = "--map") -> dict[str, str]:
    """`VAR=FIELD` pairs (template variable from a dataset field), each checked."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        var, sep, source = pair.partition("=")
        if not sep or not var.strip() or not source.strip():
            raise TunelabError(f"{what}: '{pair}' is not VAR=FIELD")
        mapping[var.strip()] = source.strip()
    return mapping


def parse_data_field(text: str) -> tuple[str, str | None, dict[str, str]]:
    """The TUI's data field `SPEC [expected=FIELD] [VAR=FIELD ...]`: dataset, expected field, mapping."""
    spec, *pairs = text.split() or ["demo"]
    mapping = parse_mapping(pairs, "data field")
    return spec, mapping.pop("expected", None), mapping
