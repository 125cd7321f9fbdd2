"""A training option declared once, as TRL's config dataclasses declare theirs: each `TrainConfig` field says its
help, flag, run-form label and bounds in its metadata (`field(default=..., metadata=option(...))`).

From that one declaration the command line makes its flag (`tui/cli/training.py`), the run form its field
(`tui/screens/train_form.py`), both read what was typed with `Option.parse` (and map it to the field by its
name), and `TrainConfig` checks every bound and choice with `Option.problem`: a bad value is the same one line,
naming the field, from the flag, the form, a stored run or a comparison.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from core.errors import TunelabError


@dataclass(frozen=True)
class Option:
    """What one field is to the front ends. Set by `option()`: the rest is read from the field (`declared`)."""

    help: str | tuple[str, ...] = ""  # a tuple: one help per flag of a tuple `flag`
    flag: str | tuple[str, ...] | None = None  # None: no flag; a tuple: one switch per choice, at most one given
    label: str | None = None  # the run form's label (with `form`)
    form: int | None = None  # its place on the run form (1 first); None: not on the form
    at_least: float | None = None  # the bounds, inclusive (at_least, at_most) or exclusive (above, below)
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    none: str | None = None  # a word that means None (as a blank does, where the field may be None)
    negate: bool = False  # the flag turns the setting off (`--full-loss`: answer_only_loss False)
    name: str = ""  # the field's: its name, type (without None), whether None is allowed, default
    kind: type = str
    optional: bool = False
    default: Any = None

    @property
    def flags(self) -> tuple[str, ...]:
        return () if self.flag is None else self.flag if isinstance(self.flag, tuple) else (self.flag,)

    @property
    def helps(self) -> tuple[str, ...]:
        return self.help if isinstance(self.help, tuple) else (self.help,)

    @property
    def dest(self) -> str:
        """Where the command line keeps the value: the field's name, or a negating flag's own."""
        return self.flags[0].removeprefix("--").replace("-", "_") if self.negate else self.name

    def shown(self, value: Any) -> str:
        """A value as it is typed: a comma list for names, blank for None."""
        return ",".join(value) if isinstance(value, tuple) else "" if value is None else str(value)

    def parse(self, text: str) -> Any:
        """What was typed (a flag's value or a form field) as the field's value; an error names the field."""
        raw = text.strip()
        if self.optional and (not raw or raw == self.none):
            return None
        if self.kind is tuple:  # a comma list, or the default's word (target_modules' all-linear)
            return raw if raw == self.default else tuple(x.strip() for x in raw.split(",") if x.strip())
        if not raw:
            raise TunelabError(f"{self.name} needs a value")
        if self.kind in (int, float):
            try:
                return self.kind(raw)
            except ValueError:
                raise TunelabError(f"{self.name} must be {self.number_word}, got '{raw}'") from None
        return raw

    @property
    def number_word(self) -> str:
        return "a whole number" if self.kind is int else "a number"

    def problem(self, value: Any) -> str | None:
        """Why `value` is refused (its type, bounds or choices), or None."""
        checked = self.kind in (int, float) or self.choices
        if value is None:
            return None if self.optional or not checked else f"{self.name} needs a value"
        if self.kind in (int, float):
            numbers = int if self.kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, numbers):
                return f"{self.name} must be {self.number_word}, got {value!r}"
            if not self.within(value):
                return f"{self.name} must be {self.bounds}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}"
        return None

    def within(self, value: float) -> bool:
        low = (self.at_least is None or value >= self.at_least) and (self.above is None or value > self.above)
        return low and (self.at_most is None or value <= self.at_most) and (self.below is None or value < self.below)

    @property
    def bounds(self) -> str:
        """The bounds in words: `between 1 and 64`, `at least 1`, `positive and at most 10000`."""
        if self.at_least is not None and self.at_most is not None:
            return f"between {self.at_least} and {self.at_most}"
        low = f"at least {self.at_least}" if self.at_least is not None else None
        if self.above is not None:
            low = "positive" if self.above == 0 else f"above {self.above}"
        high = f"at most {self.at_most}" if self.at_most is not None else None
        if self.below is not None:
            high = f"below {self.below}"
        return " and ".join(words for words in (low, high) if words)


DECLARED: dict[type, tuple[Option, ...]] = {}  # by class: read once


def option(help: str | tuple[str, ...], **declared: Any) -> dict[str, Option]:
    """A field's metadata: `field(default=16, metadata=option("LoRA rank", flag="--lora-r", at_least=1))`."""
    return {"option": Option(help, **declared)}


def declared(cls: type) -> tuple[Option, ...]:
    """Every field of `cls` declared with `option()`, in field order, knowing its name, type and default."""
    if cls not in DECLARED:
        DECLARED[cls] = _declared(cls)
    return DECLARED[cls]


def _declared(cls: type) -> tuple[Option, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if "option" not in f.metadata:
            continue
        kinds = typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        bare = [typing.get_origin(k) or k for k in kinds if k is not type(None)]
        default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        out.append(
            replace(
                f.metadata["option"],
                name=f.name,
                kind=tuple if tuple in bare else bare[0],
                optional=type(None) in kinds,
                default=default,
            )
        )
    return tuple(out)


def check(values: object, options: tuple[Option, ...]) -> None:
    """Refuse the first declared value out of its bounds or choices, naming its field."""
    for declared_option in options:
        problem = declared_option.problem(getattr(values, declared_option.name))
        if problem:
            raise TunelabError(problem)
