"""Sampling parameters and demonstrations as compact labelled fields; validation names the field at fault.

The stop field takes one string; a typed `\\n` or `\\t` in it means newline or tab. `shots` is how many
labelled training rows go before each item (0: none) and `select` how they are chosen: random (the same k
rows before every item) or similar (each item's k most similar rows); a version loaded with listed rows
(fixed, bootstrapped) offers its rule too, and keeps its seed, rows and separator while its rule is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from core.engine.params import GenParams
from core.errors import TunelabError

if TYPE_CHECKING:
    from core.data.shots import Shots

FIELDS = (  # (param name, short label, width)
    ("max_new_tokens", "max", 6),
    ("temperature", "temp", 5),
    ("top_p", "top_p", 5),
    ("top_k", "top_k", 4),
    ("seed", "seed", 6),
    ("stop", "stop", 10),
)
MAX_SHOTS = 64  # core.data.shots.MAX_SHOTS (imported there after the first frame)
PANE_RULES = ("random", "similar")  # the rules the pane offers; a loaded version's listed rows add theirs


class ParamsForm(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded: dict[str, Any] = {}  # the loaded version's shots (seed, rows, separator), kept as they were

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
        with Horizontal(classes="params-row"):
            yield Label("shots", classes="param-label")
            shots = Input(
                "0",
                id="param-shots",
                compact=True,
                classes="param-input",
                tooltip=f"labelled training rows shown before each item, 0 to {MAX_SHOTS}",
            )
            shots.styles.width = 4
            yield shots
            yield Label("select", classes="param-label")
            yield Select(
                [(rule, rule) for rule in PANE_RULES],
                value="random",
                allow_blank=False,
                compact=True,
                id="param-select",
                tooltip="random: the same k rows before every item; similar: each item's k most similar rows",
            )

    def params(self) -> GenParams:
        """The current values, validated (raises TunelabError naming the field)."""
        raw: dict[str, Any] = {name: self.query_one(f"#param-{name}", Input).value.strip() for name, _, _ in FIELDS}
        stop = raw.pop("stop")
        raw["stop"] = [stop.replace("\\n", "\n").replace("\\t", "\t")] if stop else []
        return GenParams.from_dict(raw)

    def shots(self) -> Shots | None:
        """The demonstrations asked for (None: zero-shot); raises TunelabError naming the field."""
        from core.data.shots import Shots

        raw = self.query_one("#param-shots", Input).value.strip() or "0"
        if not raw.isdigit() or int(raw) > MAX_SHOTS:
            raise TunelabError(f"shots must be a whole number from 0 to {MAX_SHOTS}, got '{raw}'")
        k, select = int(raw), str(self.query_one("#param-select", Select).value)
        if k == 0:
            return None
        kept = self.loaded if self.loaded.get("select") == select else {}
        extras: dict[str, Any] = {key: kept[key] for key in ("seed", "rows", "separator") if key in kept}
        return Shots.from_dict({**extras, "k": k, "select": select})

    def set_params(self, params: dict[str, Any]) -> None:
        """Show stored params (a re-opened history record); fields it lacks get the defaults."""
        values = {**GenParams().to_dict(), **{k: v for k, v in params.items() if k in GenParams().to_dict()}}
        for name, _, _ in FIELDS:
            shown = str(_shown(values[name]))
            if name == "stop":
                shown = shown.replace("\n", "\\n").replace("\t", "\\t")
            self.query_one(f"#param-{name}", Input).value = shown

    def set_shots(self, shots: dict[str, Any] | None) -> None:
        """Show a version's demonstrations (None or k 0: none); a rule with listed rows is offered too."""
        shots = shots if isinstance(shots, dict) else {}
        k, select = shots.get("k", 0), str(shots.get("select") or "random")
        self.loaded = dict(shots) if k else {}
        rules = [*PANE_RULES, *([select] if select not in PANE_RULES and shots.get("rows") else [])]
        chooser = self.query_one("#param-select", Select)
        chooser.set_options([(rule, rule) for rule in rules])
        chooser.value = select if select in rules else "random"
        self.query_one("#param-shots", Input).value = str(k if isinstance(k, int) else 0)


def _shown(value: Any) -> str:
    """A default as the field shows it: None and an empty stop list are blank."""
    if isinstance(value, list):
        return value[0] if value else ""
    return "" if value is None else str(value)
