"""Sampling parameters as compact labelled fields; validation names the field at fault.

The stop field takes one string; a typed `\\n` or `\\t` in it means newline or tab.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label

from core.engine.params import GenParams

FIELDS = (  # (param name, short label, width)
    ("max_new_tokens", "max", 6),
    ("temperature", "temp", 5),
    ("top_p", "top_p", 5),
    ("top_k", "top_k", 4),
    ("seed", "seed", 6),
    ("stop", "stop", 10),
)


class ParamsForm(Vertical):
    def compose(self) -> ComposeResult:
        defaults = GenParams().to_dict()
        rows = (FIELDS[:3], FIELDS[3:])
        for row in rows:
            with Horizontal(classes="params-row"):
                for name, label, width in row:
                    yield Label(label, classes="param-label")
                    field = Input(_shown(defaults[name]), id=f"param-{name}", compact=True, classes="param-input")
                    field.styles.width = width + 2
                    yield field

    def params(self) -> GenParams:
        """The current values, validated (raises TunelabError naming the field)."""
        raw: dict[str, Any] = {name: self.query_one(f"#param-{name}", Input).value.strip() for name, _, _ in FIELDS}
        stop = raw.pop("stop")
        raw["stop"] = [stop.replace("\\n", "\n").replace("\\t", "\t")] if stop else []
        return GenParams.from_dict(raw)

    def set_params(self, params: dict[str, Any]) -> None:
        """Show stored params (a re-opened history record); fields it lacks get the defaults."""
        values = {**GenParams().to_dict(), **{k: v for k, v in params.items() if k in GenParams().to_dict()}}
        for name, _, _ in FIELDS:
            shown = str(_shown(values[name]))
            if name == "stop":
                shown = shown.replace("\n", "\\n").replace("\t", "\\t")
            self.query_one(f"#param-{name}", Input).value = shown


def _shown(value: Any) -> str:
    """A default as the field shows it: None and an empty stop list are blank."""
    if isinstance(value, list):
        return value[0] if value else ""
    return "" if value is None else str(value)
