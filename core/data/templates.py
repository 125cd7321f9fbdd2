"""Prompt templates: `{{name}}` placeholders and nothing else, so rendering can never run code.

The grammar is the sandbox: a placeholder is a bare identifier, so attribute access, indexing, calls
and filters are parse errors, not something filtered at run time. Single braces are literal text
(JSON examples in prompts need them); every `{{` must open a valid placeholder and every `}}` close one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import TunelabError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPEN_OR_CLOSE = re.compile(r"\{\{|\}\}")


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {col}"


DEMOS = "demos"  # a placeholder the prompt's demonstrations fill (empty without any), never a row's field


@dataclass(frozen=True)
class Template:
    text: str

    def __post_init__(self) -> None:
        _ = self.variables  # parse once up front, so a bad template fails before any run

    @property
    def variables(self) -> tuple[str, ...]:
        """Names used, in order of first use; raises TunelabError at the first malformed brace."""
        names: list[str] = []
        pos = 0
        text = self.text
        while (m := OPEN_OR_CLOSE.search(text, pos)) is not None:
            if m.group() == "}}":
                raise TunelabError(f"template: '}}}}' without an opening '{{{{' at {_where(text, m.start())}")
            placeholder = PLACEHOLDER.match(text, m.start())
            if placeholder is None:
                raise TunelabError(f"template: {_bad_placeholder(text, m.start())} at {_where(text, m.start())}")
            if placeholder.group(1) not in names:
                names.append(placeholder.group(1))
            pos = placeholder.end()
        return tuple(names)

    def check(self, available: set[str] | frozenset[str] | Mapping[str, object], source: str = "the data") -> None:
        """Fail before any run if a variable has no value, naming the variable and what exists."""
        missing = [name for name in self.variables if name not in available and name != DEMOS]
        if missing:
            have = ", ".join(sorted(available)) or "none"
            raise TunelabError(f"template variable '{{{{{missing[0]}}}}}' has no value in {source} (available: {have})")

    def render(self, values: Mapping[str, object]) -> str:
        self.check(values)
        return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), self.text)


def _bad_placeholder(text: str, start: int) -> str:
    end = text.find("}}", start + 2)
    if end == -1:
        return "unbalanced '{{' (no closing '}}')"
    inner = text[start + 2 : end].strip()
    if not inner:
        return "empty placeholder '{{}}'"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+|\[[^\]]*\])+", inner):
        return f"attribute or item access is not allowed in '{{{{{inner}}}}}'"
    return f"'{{{{{inner}}}}}' is not a variable name (only {{{{name}}}} is allowed)"
