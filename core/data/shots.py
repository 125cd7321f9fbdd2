"""Demonstrations: a prompt version's k labelled training rows, shown to the model before each item.

How they are chosen (`select`): `fixed` (the listed row ids), `random` (k rows drawn with the version's seed:
the same for every item, so they are a shared prefix), `similar` (for each item, the k training rows most
like it, by BM25 over their rendered inputs), `bootstrapped` (rows the model itself answered right under the
grader, found once by `Workbench.bootstrap` and then listed like `fixed`). They come from training rows only:
never from eval, test or sealed rows; `pool` narrows those to the listed ones (a data-budget curve's prompt arm
sees the rows its LoRA trains on, no more). How they render: in chat (or auto) mode as user/assistant turns before
the item, as chat templates and served APIs expect; in raw mode as rendered examples, each its prompt and its
answer, joined by `separator`, before the item, or where the template writes `{{demos}}` (each example is
then what the template writes after the placeholder).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from core.data.datasets import Item
from core.data.templates import DEMOS, Template
from core.errors import TunelabError

SELECTIONS = ("fixed", "random", "similar", "bootstrapped")
SHOT_KEYS = (
    "shots",
    "select",
    "seed",
    "rows",
    "separator",
    "pool",
)  # a prompt file's keys: shots = k, the rest as named
MAX_SHOTS = 64
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Shots:
    k: int
    select: str = "random"
    seed: int = 0
    rows: tuple[str, ...] = ()  # fixed or bootstrapped: the row ids, in the order shown
    separator: str = "\n\n"  # raw mode: between examples, and before the item
    pool: tuple[str, ...] = ()  # the training row ids demonstrations may come from (empty: every training row)

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or not 0 <= self.k <= MAX_SHOTS:
            raise TunelabError(f"shots must be a whole number from 0 to {MAX_SHOTS}, got {self.k!r}")
        if self.select not in SELECTIONS:
            raise TunelabError(f"select must be one of {', '.join(SELECTIONS)}, got '{self.select}'")
        if self.select == "fixed" and len(self.rows) != self.k:
            raise TunelabError(f"select fixed lists its rows: {len(self.rows)} listed for {self.k} shots")

    @property
    def label(self) -> str:
        """`4-shot similar`, as the verdict's column and the history name it."""
        return f"{self.k}-shot {self.select}" + (f" from {len(self.pool)} rows" if self.pool else "")

    @property
    def shared(self) -> bool:
        """The same demonstrations before every item (a prefix the engines may compute once)."""
        return self.select != "similar"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = list(self.rows)
        if self.pool:  # absent when empty: a version's id (a hash of this) is what it was before pools
            out["pool"] = list(self.pool)
        else:
            del out["pool"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shots:
        rows, pool = data.get("rows") or (), data.get("pool") or ()
        for key, ids in (("rows", rows), ("pool", pool)):
            if not isinstance(ids, (list, tuple)) or not all(isinstance(r, (str, int)) for r in ids):
                raise TunelabError(f"shots {key} must be a list of row ids")
        return cls(
            data.get("k", 0),
            str(data.get("select", "random")),
            int(data.get("seed", 0)),
            tuple(str(r) for r in rows),
            str(data.get("separator", "\n\n")),
            tuple(str(r) for r in pool),
        )


class Demonstrations:
    """Chooses each item's demonstrations from the training rows (`pool`; the shots' own pool narrows it)."""

    def __init__(self, shots: Shots, pool: list[Item], dataset: str) -> None:
        if shots.pool:
            pool = _narrowed(pool, shots.pool, dataset)
        if not pool:
            raise TunelabError(f"dataset {dataset} has no training rows: demonstrations come from training rows only")
        if any(it.expected is None for it in pool[:1]):
            raise TunelabError(f"{pool[0].where}: a demonstration needs an expected answer, and the row has none")
        self.shots, self.pool = shots, pool
        self.fixed = self._fixed(dataset) if shots.select in ("fixed", "bootstrapped") else None
        if shots.select == "random":
            self.fixed = random.Random(shots.seed).sample(pool, min(shots.k, len(pool)))
        self.index = BM25([_text(it) for it in pool]) if shots.select == "similar" else None

    def _fixed(self, dataset: str) -> list[Item]:
        by_id = {it.id: it for it in self.pool}
        missing = [r for r in self.shots.rows if r not in by_id]
        if missing:
            raise TunelabError(
                f"demonstration row '{missing[0]}' is not a training row of {dataset} (demonstrations come from "
                "training rows only: never eval, test or sealed rows)"
            )
        if self.shots.select == "bootstrapped" and not self.shots.rows:
            raise TunelabError("select bootstrapped needs its rows found first (Workbench.bootstrap, or optimize)")
        return [by_id[r] for r in self.shots.rows]

    @property
    def note(self) -> str:
        """What the verdict says of them: the same data a LoRA would train on."""
        drawn = len(self.fixed) if self.fixed is not None else len(self.pool)
        pooled = " allowed" if self.shots.pool else ""
        return f"{self.shots.label}: demonstrations drawn from {drawn} of the {len(self.pool)} training rows{pooled}"

    def for_item(self, item: Item) -> list[Item]:
        if self.shots.k == 0:
            return []
        if self.fixed is not None:
            return [d for d in self.fixed if d.key != item.key][: self.shots.k]
        assert self.index is not None
        ranked = self.index.top(_text(item), self.shots.k + 1)
        return [self.pool[i] for i in ranked if self.pool[i].key != item.key][: self.shots.k]


def _narrowed(pool: list[Item], ids: tuple[str, ...], dataset: str) -> list[Item]:
    """The training rows the shots' pool lists (in the dataset's order); a listed row that is not one is refused."""
    wanted = set(ids)
    kept = [it for it in pool if it.id in wanted]
    missing = wanted - {it.id for it in kept}
    if missing:
        raise TunelabError(
            f"demonstration pool row '{sorted(missing)[0]}' is not a training row of {dataset} (demonstrations "
            "come from training rows only: never eval, test or sealed rows)"
        )
    return kept


def hash_of(key: str, seed: int) -> str:
    """A seeded order over row ids (the same on every run and machine)."""
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def _text(item: Item) -> str:
    return " ".join([*item.vars.values(), *(str(m.get("content", "")) for m in item.messages)])


class BM25:
    """Okapi BM25 (k1 1.5, b 0.75) over lowercased words: the rows most like a query, best first, ties by
    row order (so the same query always gets the same rows)."""

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(WORD.findall(d.lower())) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        counts: Counter[str] = Counter()
        for doc in self.docs:
            counts.update(doc.keys())
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in counts.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        words = [w for w in WORD.findall(query.lower()) if w in self.idf]
        out = []
        for doc, length in zip(self.docs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / (self.average or 1.0))
            out.append(sum(self.idf[w] * doc[w] * (self.k1 + 1) / (doc[w] + norm) for w in words if w in doc))
        return out

    def top(self, query: str, k: int) -> list[int]:
        scored = self.scores(query)
        return sorted(range(len(scored)), key=lambda i: (-scored[i], i))[:k]


def joined(prompt: str, answer: str) -> str:
    """A raw example: its prompt and its answer, a space between unless one side already has one."""
    return prompt + answer if not prompt or prompt[-1].isspace() or answer[:1].isspace() else f"{prompt} {answer}"


def demo_prompt(
    template: str, system: str, mode: str, separator: str, item: Item, demos: list[Item]
) -> tuple[str, str, tuple[dict[str, Any], ...]]:
    """The item's text, system prompt and turns with `demos` before it (see the module's docstring)."""
    shape = Template(template)
    text, system_text = shape.render(item.vars), Template(system).render(item.vars)
    if not demos:
        return text, system_text, ()
    placed = DEMOS in shape.variables  # an example is what the template writes after `{{demos}}`
    example = Template(re.split(r"\{\{\s*demos\s*\}\}", template)[-1].lstrip()) if placed else shape
    render = lambda row: example.render(row.vars)  # noqa: E731
    if mode == "raw":
        block = separator.join(joined(render(d), d.expected or "") for d in demos)
        if placed:
            return shape.render({**item.vars, DEMOS: block}), system_text, ()
        return block + separator + text, system_text, ()
    turns = [
        t
        for d in demos
        for t in ({"role": "user", "content": render(d)}, {"role": "assistant", "content": d.expected or ""})
    ]
    return "", system_text, (*turns, {"role": "user", "content": text})
