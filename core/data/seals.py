"""The seal on a dataset's test rows: carved once, at the fraction first asked for, and never trained on.

A carve is stored (the `seals` table: the fraction and the sealed rows' key hashes) the first time a dataset
is sealed, and applies from then on whatever the command asks: an eval or a run given no `--holdout` keeps
the sealed rows out all the same, and another fraction is refused, since it would move dev rows that were
already tuned on into the test split. A dataset is recognised by its rows, not its file's name or bytes.

Every training run keeps a ledger of the rows it trained on (`runfolders.write_ledger`); a final look
refuses an adapter whose ledger holds a sealed row, and notes that the seal cannot vouch for an adapter
that keeps none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tinydb import TinyDB

from core.data.datasets import SEAL_SALT, SEALED, Item, load_dataset, share
from core.errors import TunelabError
from core.history.store import now_iso
from core.storage.meta import Meta
from core.storage.runfolders import LEDGER_CHARS, read_ledger, resolve_adapter, run_dir_of

SEALS_TABLE = "seals"
KEY_CHARS = 16


@dataclass(frozen=True)
class Seal:
    """A stored carve: the dataset's name when sealed, its fraction, when, and the sealed rows' key hashes."""

    dataset: str
    fraction: float
    created_at: str
    rows: frozenset[str]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_CHARS]


def _seals(root: Path) -> list[Seal]:
    out = []
    for doc in Meta(root).read(SEALS_TABLE):
        try:
            out.append(
                Seal(str(doc["dataset"]), float(doc["fraction"]), str(doc["created_at"]), frozenset(doc["rows"]))
            )
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited row: no seal to keep
    return out


def _pool(items: list[Item], held_out: bool) -> list[tuple[str, float]]:
    """The rows a seal is carved from (eval rows, or every row of a file naming no split): hash and share."""
    return [(key_hash(it.key), share(SEAL_SALT, it.key)) for it in items if held_out or it.split == "eval"]


def _matching(seals: list[Seal], pool: list[tuple[str, float]]) -> Seal | None:
    """The stored seal of this dataset: at least half the rows it sealed (or would seal now) are the same."""
    for seal in seals:
        carved = {h for h, s in pool if s < seal.fraction}
        smaller = min(len(carved), len(seal.rows))
        if smaller and len(carved & seal.rows) * 2 >= smaller:
            return seal
    return None


class Sealable(Protocol):
    """What names a dataset and how it is split: an eval request and a training config both do."""

    @property
    def dataset(self) -> str: ...

    @property
    def expected(self) -> str | None: ...

    @property
    def mapping(self) -> Mapping[str, str]: ...

    @property
    def eval_fraction(self) -> float: ...

    @property
    def holdout(self) -> float: ...


def fixed_holdout(root: Path, source: Sealable) -> float:
    """The sealed fraction to load `source`'s dataset with: the stored carve's (also when none is asked for),
    or the one asked for when the dataset was never sealed; another fraction than the stored one is refused."""
    holdout = source.holdout
    dataset = load_dataset(
        source.dataset, expected=source.expected, mapping=source.mapping, holdout=source.eval_fraction
    )
    if dataset.sealed:  # its own test split: the loader refuses a carve on top of it
        return holdout
    seal = _matching(_seals(root), _pool(dataset.items, dataset.held_out))
    if seal is None or holdout in (0.0, seal.fraction):
        return seal.fraction if seal is not None else holdout
    raise TunelabError(
        f"dataset {dataset.name} was sealed at {seal.fraction:g} on {seal.created_at[:10]} ({len(seal.rows)} rows): "
        f"{{0}} {holdout:g} would move rows already tuned on into the test split (give {{0}} {seal.fraction:g}, "
        "or nothing: the seal applies by itself)",
        "holdout",
    )


def remember_seal(root: Path, name: str, fraction: float, items: Iterable[Item]) -> None:
    """Store the carve of a dataset loaded at a sealed `fraction`, the first time (a matching one is kept)."""
    rows = frozenset(key_hash(it.key) for it in items if it.split == SEALED)
    if not fraction or not rows:
        return

    def add(db: TinyDB) -> None:
        table = db.table(SEALS_TABLE)
        for doc in table.all():
            stored = frozenset(doc.get("rows") or ())
            if stored and len(stored & rows) * 2 >= min(len(stored), len(rows)):
                return
        table.insert({"dataset": name, "fraction": fraction, "created_at": now_iso(), "rows": sorted(rows)})

    Meta(root).write(add)


def breach(root: Path, adapter: str, sealed: list[Item]) -> tuple[int, bool]:
    """How many of the sealed rows `adapter` trained on, and whether its ledger says (False: no ledger, so the
    seal cannot vouch for what it saw)."""
    try:
        run_dir = run_dir_of(resolve_adapter(root, adapter))
    except TunelabError:
        return 0, False
    ledger = read_ledger(run_dir) if run_dir is not None else None
    if ledger is None:
        return 0, False
    return sum(it.digest[:LEDGER_CHARS] in ledger for it in sealed), True


def check_seal(root: Path, adapters: Iterable[str], sealed: list[Item]) -> list[str]:
    """Refuse a final look at an adapter that trained on a sealed row (one line: the adapter and how many);
    return the adapters whose training the seal cannot vouch for (no ledger)."""
    unvouched = []
    for adapter in dict.fromkeys(adapters):
        overlap, kept = breach(root, adapter, sealed)
        if overlap:
            raise TunelabError(
                f"adapter {adapter} trained on {overlap} of the {len(sealed)} sealed rows: a final look cannot judge "
                "it (train it with the seal in place, or judge it on the dev rows)"
            )
        if not kept:
            unvouched.append(adapter)
    return unvouched


def unvouched_note(adapter: str | None) -> str:
    return f"the seal cannot vouch for what {adapter} saw: it keeps no training ledger (trained elsewhere or before)"


def repeats_note(repeats: int) -> str:
    return f"{repeats} row(s) repeat another row's content: kept, each on the same side of every split as it"
