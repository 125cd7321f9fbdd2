"""History search queries: free words plus `key:value` filters, one syntax for the TUI box and the CLI.

`sentiment tag:demo model:qwen kind:eval is:starred label:good since:2026-11-01 until:2026-11-30`
Words match case-insensitively anywhere in the prompt, system, output, correction, note or tags (all
must match); filters match the record's fields. Quotes keep a phrase together: `"this review"`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from core.errors import TunelabError

KINDS = ("generation", "eval", "train")
LABELS = ("good", "bad", "corrected", "any")
FIELD_FILTERS = {"model": "model", "adapter": "adapter", "prompt": "prompt_name", "status": "status"}  # substring


@dataclass(frozen=True)
class HistoryQuery:
    words: tuple[str, ...] = ()
    kind: str | None = None
    model: str | None = None
    adapter: str | None = None
    prompt: str | None = None
    status: str | None = None
    tags: tuple[str, ...] = ()
    starred: bool = False
    label: str | None = None
    since: str | None = None  # ISO dates, inclusive
    until: str | None = None

    @property
    def empty(self) -> bool:
        return self == HistoryQuery()

    def with_filters(self, **changes: Any) -> HistoryQuery:
        """The CLI's --tag/--kind flags on top of the typed query, validated like typed ones."""
        tags = tuple(changes.pop("tags", ()) or ())
        query = replace(self, tags=self.tags + tags, **{k: v for k, v in changes.items() if v not in (None, False)})
        _validate(query)
        return query

    def needles(self) -> list[bytes]:
        """Lower-cased byte strings every matching index line contains (cheap pre-filter)."""
        out = [w.encode() for w in self.words]
        out += [v.lower().encode() for v in (self.model, self.adapter, self.prompt, self.status) if v]
        out += [f"#{t.lower()}".encode() for t in self.tags]
        if self.kind:
            out.append(f"\x1fkind:{self.kind}".encode())
        if self.starred:
            out.append(b"\x1fis:starred")
        if self.label:
            out.append(f"\x1flabel:{self.label}".encode())
        return sorted(out, key=len, reverse=True)

    def matches(self, row: dict[str, Any], text: bytes) -> bool:
        """Exact check of one index row (its JSON) and its lower-cased search text."""
        words_text = text.partition(b"\x1f")[0]  # what follows is kind:/is:/label: marks, not content
        if any(w.encode() not in words_text for w in self.words):
            return False
        if self.kind and row.get("kind") != self.kind:
            return False
        for name, key in FIELD_FILTERS.items():
            want = getattr(self, name)
            if want and want.lower() not in str(row.get(key) or "").lower():
                return False
        row_tags = {t.lower() for t in row.get("tags") or ()}
        if any(t.lower() not in row_tags for t in self.tags):
            return False
        if self.starred and not row.get("starred"):
            return False
        if self.label and not _label_matches(self.label, row.get("label")):
            return False
        day = str(row.get("created_at", ""))[:10]
        return not (self.since and day < self.since) and not (self.until and day > self.until)


def _label_matches(want: str, have: str | None) -> bool:
    return have is not None if want == "any" else have == want


def parse_query(text: str) -> HistoryQuery:
    """Parse the search box / CLI words; a bad filter value is one line naming the filter."""
    try:
        parts = shlex.split(text)
    except ValueError:  # an unbalanced quote while the user is still typing: take the words as they are
        parts = text.replace('"', " ").replace("'", " ").split()
    words: list[str] = []
    fields: dict[str, Any] = {"tags": []}
    for part in parts:
        key, sep, value = part.partition(":")
        key = key.lower()
        if part.startswith("#") and len(part) > 1:
            fields["tags"].append(part[1:])
        elif not sep or not value:
            words.append(part.lower())
        elif key == "tag":
            fields["tags"].append(value)
        elif key == "is" and value.lower() == "starred":
            fields["starred"] = True
        elif key in ("kind", "label"):
            fields[key] = value.lower()
        elif key in FIELD_FILTERS:
            fields[key] = value
        elif key in ("since", "after", "from"):
            fields["since"] = value
        elif key in ("until", "before", "to"):
            fields["until"] = value
        else:  # "http://x" or "note:" are words, not filters
            words.append(part.lower())
    fields["tags"] = tuple(fields["tags"])
    query = HistoryQuery(words=tuple(words), **fields)
    _validate(query)
    return query


def _validate(query: HistoryQuery) -> None:
    if query.kind and query.kind not in KINDS:
        raise TunelabError(f"kind:{query.kind} is not a record kind (use {', '.join(KINDS)})")
    if query.label and query.label not in LABELS:
        raise TunelabError(f"label:{query.label} is not a label (use {', '.join(LABELS)})")
    for name in ("since", "until"):
        value = getattr(query, name)
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise TunelabError(f"{name}:{value} is not a date (use YYYY-MM-DD)") from None
