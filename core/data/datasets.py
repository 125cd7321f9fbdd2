"""Test-case datasets as users have them: alpaca rows (with `history`), OpenAI `messages`, ShareGPT
`conversations`, TRL's `prompt`/`completion` (text or turns), promptfoo's test CSV (`__expected` assertions),
or plain `{vars..., expected}`, from JSONL, JSON arrays, CSV/TSV, Parquet or Arrow (`rowfiles`).

A dataset spec is `demo` (the shipped task), a folder of split files (`train.jsonl`, `eval.json`, ...),
one file whose rows may carry a `split` field (rows without one are split here, seeded by their ids), or
`FOLDER#NAME` for an entry of LLaMA-Factory's `dataset_info.json`. Every error names the file and line or
index (and the field).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from core import demo
from core.data import promptfoo
from core.data.rowfiles import SUFFIXES, read_rows
from core.data.templates import DEMOS, Template
from core.data.turns import history_turns, openai_turns, sharegpt_turns, split_answer
from core.errors import TunelabError

SEALED = "test"  # the split only a final comparison looks at
EXPECTED_GUESSES = ("expected", "output", "label", "answer", "target", "completion")  # completion: TRL's rows
SOURCE_FIELD = "derived_from"  # a derived row's source row (its digest): what a run's ledger records it as
RESERVED = {"id", "split", SOURCE_FIELD}
CHAT_FIELDS = {"messages", "conversations", "history", "tools"}
INFO_FILE = "dataset_info.json"  # LLaMA-Factory's index of datasets
META_FILES = {INFO_FILE, "state.json", "dataset_dict.json"}  # beside the data: LLaMA-Factory's, `datasets`' own
HOLDOUT = 0.1  # rows with no split: this fraction is held out as `eval`
SEAL_SALT = b"sealed\0"


@dataclass(frozen=True)
class Item:
    id: str
    vars: dict[str, str]
    expected: str | None
    where: str  # "file:line", for errors about this row
    split: str | None = None
    messages: tuple[dict[str, Any], ...] = ()  # chat rows: the prompt turns
    checks: tuple[str, ...] | None = None  # the row's own grader specs (promptfoo); None: the eval's grader
    answers: tuple[str, ...] = ()  # an expected list: any of these passes (`expected` is the first, trained on)
    digest: str = ""  # a hash of what the loader read of the row: the same row in any file, order or format
    named: bool = False  # the row gave its own `id` (else the id is its digest)
    source: str = ""  # a derived row (a prompt's passing output): the digest of the training row it came from

    @property
    def key(self) -> str:
        """What splits, seals and training ledgers know a row by: its own id, else its content."""
        return self.id if self.named or not self.digest else self.digest

    @property
    def accepted(self) -> tuple[str | None, ...]:
        """Every answer that passes: the list's, or the one expected answer (None: there is none)."""
        return self.answers or (self.expected,)

    @property
    def expected_text(self) -> str | None:
        """The expected answer as results and screens show it: a list's answers joined by ' | '."""
        return " | ".join(self.answers) if len(self.answers) > 1 else self.expected


@dataclass
class Dataset:
    name: str
    format: str  # plain | alpaca | chat | sharegpt | promptfoo
    items: list[Item]
    expected_field: str | None
    sha256: str
    splits: tuple[str, ...] = field(default=())
    held_out: bool = False  # the rows named no split: `train`/`eval` were assigned here
    repeats: int = 0  # rows whose content repeats an earlier row's (kept, on the same side as it)

    @property
    def sealed(self) -> bool:
        """Whether the dataset has a sealed `test` split (its own, or carved with `sealed=`): only a final
        comparison looks at it, and every look is an eval the history keeps."""
        return SEALED in self.splits

    def resolve_split(self, name: str | None) -> str | None:
        """`auto`: the dataset's own `eval` split, or every row of a file that names no splits (test cases,
        not a training set; ask for `eval` to get only the rows held out from training). `all`: every row
        but the sealed `test` rows (asked for by name only)."""
        if name == "all":
            return None
        if name == "auto":
            return None if self.held_out else "eval"
        return name

    def split(self, name: str | None) -> list[Item]:
        name = self.resolve_split(name)
        if name is None:
            return [it for it in self.items if it.split != SEALED]
        if name not in self.splits:
            raise TunelabError(
                f"dataset {self.name} has no split '{name}' (splits: {', '.join(self.splits) or 'none'})"
            )
        return [it for it in self.items if it.split == name]

    def check_template(self, template: Template, items: list[Item] | None = None) -> None:
        """Every row must give every variable: the first row that does not is named."""
        for item in items if items is not None else self.items:
            missing = [v for v in template.variables if v not in item.vars and v != DEMOS]
            if missing:
                raise TunelabError(
                    f"{item.where}: template variable '{{{{{missing[0]}}}}}' has no value "
                    f"(fields: {', '.join(sorted(item.vars)) or 'none'})"
                )


@dataclass(frozen=True)
class Selection:
    """Which rows of which dataset, as a front end's dataset field names them: what a single generation fills
    its template from, and what an eval request runs on."""

    dataset: str
    split: str | None = "auto"
    expected: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    eval_fraction: float = HOLDOUT  # rows of a file with no splits held out as `eval`
    holdout: float = 0.0  # of the eval rows, this share sealed as `test`

    def load(self) -> Dataset:
        """The dataset, split as every eval, run and look at it splits it."""
        return load_dataset(
            self.dataset, expected=self.expected, mapping=self.mapping, holdout=self.eval_fraction, sealed=self.holdout
        )

    def rows(self) -> list[Item]:
        return self.load().split(self.split)


def load_dataset(
    spec: str,
    *,
    expected: str | None = None,
    mapping: Mapping[str, str] | None = None,
    holdout: float = HOLDOUT,
    sealed: float = 0.0,
) -> Dataset:
    """Load all rows of `spec`; `expected` names the answer field, `mapping` adds var=field aliases.

    `spec` is `demo`, a file, a folder of split files, or `FOLDER#NAME` for an entry of LLaMA-Factory's
    `dataset_info.json`. Rows that name no split are split here: a `holdout` fraction becomes `eval`, the
    rest `train`, chosen by a hash of each row's id (the same rows whatever the order or the run)."""
    if not 0.0 <= holdout < 1.0:
        raise TunelabError(f"the eval fraction must be at least 0 and below 1, got {holdout}")
    if not 0.0 <= sealed < 1.0:
        raise TunelabError(f"{{0}} must be at least 0 and below 1, got {sealed}", "holdout")
    path, renames = _locate(spec)
    if path.is_dir():
        files = data_files(path)
        if not files:
            raise TunelabError(f"dataset folder {path} has no {', '.join(SUFFIXES)} files")
    elif path.is_file():
        files = [(path, None)]
    else:
        raise TunelabError(f"dataset not found: {path}")
    items: list[Item] = []
    digest = hashlib.sha256()
    fmt, field_name = "plain", expected
    for file, split in files:
        label = file.name if file.parent == path or not path.is_dir() else f"{file.parent.name}/{file.name}"
        data, rows = read_rows(file, label)
        digest.update(label.encode() + b"\0" + data)
        first = True
        for where, row in rows:
            row = _renamed(row, renames)
            if first:
                fmt = _detect(row)
                field_name = expected or _guess_expected(fmt, row)
                first = False
            items.append(_item(where, row, fmt, field_name, split, mapping or {}))
        if first:
            raise TunelabError(f"{file.name}: no rows")
    items, repeats = _unique(items)
    held_out = not any(it.split for it in items)
    if held_out:
        items = _held_out(items, holdout)
    if sealed:
        items = _sealed(items, sealed, held_out, spec)
    splits = tuple(dict.fromkeys(it.split for it in items if it.split))
    name = spec if spec == "demo" else path.name + (f"#{spec.rpartition('#')[2]}" if renames is not None else "")
    return Dataset(name, fmt, items, field_name, digest.hexdigest(), splits, held_out, repeats)


SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?$")  # train-00000-of-00002[-hash]


def data_files(folder: Path) -> list[tuple[Path, str | None]]:
    """A folder's data files and the split each holds, in the layouts users have: `train.jsonl` beside
    `eval.jsonl`; the hub's shards (`data/train-00000-of-00002.parquet`: split `train`); `datasets`'
    save_to_disk (`train/data-00000-of-00001.arrow`: the split is the folder). One level of subfolders."""

    def split_of(file: Path) -> str | None:
        stem = match.group("split") if (match := SHARD.match(file.stem)) else file.stem
        if stem == "data":  # save_to_disk names every shard data-NNNNN: its folder is the split
            return file.parent.name if file.parent != folder else None
        return stem

    def own(where: Path) -> list[Path]:
        return sorted(p for p in where.iterdir() if p.is_file() and p.suffix in SUFFIXES and p.name not in META_FILES)

    files = own(folder) or [f for sub in sorted(p for p in folder.iterdir() if p.is_dir()) for f in own(sub)]
    return [(file, split_of(file)) for file in files]


def _unique(items: list[Item]) -> tuple[list[Item], int]:
    """Ids made unique: an own id given twice is refused (the row named); a row whose content repeats an earlier
    one's keeps its digest as key (so both land on one side) and gets `~2`, `~3`... on its id. Returns the items
    and how many repeat."""
    seen: dict[str, int] = {}
    out, repeats = [], 0
    for it in items:
        count = seen.get(it.id, 0) + 1
        seen[it.id] = count
        if count > 1 and it.named:
            raise TunelabError(f"{it.where}: id '{it.id}' appears more than once")
        if count > 1:
            repeats += 1
            it = replace(it, id=f"{it.id}~{count}")
        out.append(it)
    return out, repeats


def share(salt: bytes, key: str) -> float:
    """Where a row's key falls in [0, 1) under a salt: a row is held out when this is below the fraction, so
    whether a row is held out depends on that row alone (adding, removing or reordering others moves none)."""
    return int.from_bytes(hashlib.sha256(salt + key.encode()).digest()[:8], "big") / 2**64


def _below(items: list[Item], pool: list[int], salt: bytes, fraction: float) -> set[int]:
    """The pool's rows whose share is below `fraction`; at least one, and never the whole pool."""
    ranked = sorted(pool, key=lambda i: share(salt, items[i].key))
    chosen = {i for i in pool if share(salt, items[i].key) < fraction} or set(ranked[:1])
    if len(chosen) == len(pool):
        chosen.discard(ranked[-1])
    return chosen


def _held_out(items: list[Item], fraction: float) -> list[Item]:
    """`train`/`eval` for rows with no split: rows whose key's share is below `fraction` are `eval`."""
    if fraction == 0 or len(items) < 2:
        return [replace(it, split="train") for it in items]
    held = _below(items, list(range(len(items))), b"", fraction)
    return [replace(it, split="eval" if i in held else "train") for i, it in enumerate(items)]


def _sealed(items: list[Item], fraction: float, held_out: bool, spec: str) -> list[Item]:
    """A sealed `test` split carved from the rows an eval runs on (the `eval` split, or every row of a file
    that names none) by each row's key (its own salt: independent of the eval holdout): a row is sealed or not
    whatever the other rows, their order, the file's name or format."""
    if any(it.split == SEALED for it in items):
        raise TunelabError(
            f"dataset {spec} has its own test split: {{0}} carves one only where there is none", "holdout"
        )
    pool = [i for i, it in enumerate(items) if held_out or it.split == "eval"]
    if len(pool) < 2:
        raise TunelabError(f"dataset {spec}: too few eval rows ({len(pool)}) to seal some away")
    carved = _below(items, pool, SEAL_SALT, fraction)
    return [replace(it, split=SEALED) if i in carved else it for i, it in enumerate(items)]


class Renames(NamedTuple):
    """How a dataset_info.json entry names things: row columns, and ShareGPT turn keys and speaker tags."""

    columns: dict[str, str]
    keys: dict[str, str]
    tags: dict[str, str]


def _locate(spec: str) -> tuple[Path, Renames | None]:
    """The file or folder a spec names, and for a dataset_info.json entry its column renames."""
    if spec == "demo":
        return demo.TASK_DIR, None
    base, sep, entry = spec.rpartition("#")
    if not sep or not entry:
        return Path(spec).expanduser(), None
    folder = Path(base).expanduser()
    info_path = folder if folder.name == INFO_FILE else folder / INFO_FILE
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TunelabError(f"{info_path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TunelabError(f"{info_path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get(entry), dict):
        known = ", ".join(sorted(info)) if isinstance(info, dict) else "none"
        raise TunelabError(f"{info_path}: no dataset '{entry}' (known: {known})")
    meta = info[entry]
    if not isinstance(meta.get("file_name"), str):
        raise TunelabError(f"{info_path}: dataset '{entry}' has no local 'file_name' (hub datasets are not read)")
    return info_path.parent / meta["file_name"], _columns(meta)


def _columns(meta: dict[str, Any]) -> Renames:
    """LLaMA-Factory's column, key and tag names, mapped onto the names this reader knows."""
    columns: dict[str, Any] = meta["columns"] if isinstance(meta.get("columns"), dict) else {}
    ours = {"prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"}
    ours["messages"] = "conversations" if meta.get("formatting") == "sharegpt" else "messages"
    tags: dict[str, Any] = meta["tags"] if isinstance(meta.get("tags"), dict) else {}

    def named(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
        return {tags[tag]: ours_name for tag, ours_name in pairs if isinstance(tags.get(tag), str)}

    return Renames(
        {v: ours[k] for k, v in columns.items() if k in ours and isinstance(v, str)},
        named((("role_tag", "from"), ("content_tag", "value"))),
        named((("user_tag", "user"), ("assistant_tag", "assistant"), ("system_tag", "system"))),
    )


def _renamed(row: dict[str, Any], renames: Renames | None) -> dict[str, Any]:
    if renames is None:
        return row
    out = {renames.columns.get(k, k): v for k, v in row.items()}
    turns = out.get("conversations")
    if (renames.keys or renames.tags) and isinstance(turns, list):
        out["conversations"] = [_renamed_turn(m, renames) if isinstance(m, dict) else m for m in turns]
    return out


def _renamed_turn(turn: dict[str, Any], renames: Renames) -> dict[str, Any]:
    out = {renames.keys.get(k, k): v for k, v in turn.items()}
    if isinstance(out.get("from"), str):
        out["from"] = renames.tags.get(out["from"], out["from"])
    return out


def _detect(row: dict[str, Any]) -> str:
    if "messages" in row or (isinstance(row.get("prompt"), list) and "completion" in row):
        return "chat"  # OpenAI messages, or TRL's conversational prompt-completion
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row:
        return "alpaca"
    return "promptfoo" if promptfoo.is_promptfoo(row) else "plain"


def _guess_expected(fmt: str, row: dict[str, Any]) -> str | None:
    if fmt in ("chat", "sharegpt"):
        return None  # the last assistant turn
    if fmt == "alpaca":
        return "output"
    if fmt == "promptfoo":
        return None  # each row's assertions (`promptfoo.checks`)
    return next((f for f in EXPECTED_GUESSES if f in row), None)


def _text(where: str, name: str, value: Any) -> str:
    if value is None:
        raise TunelabError(f"{where}: field '{name}' is null")
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _expected(where: str, name: str, value: Any) -> tuple[str, tuple[str, ...]]:
    """The expected answer, and for a list (QA sets ship "any of these answers") every answer in it."""
    if not isinstance(value, list):
        return _text(where, name, value), ()
    if not value:
        raise TunelabError(f"{where}: field '{name}' is an empty list (give at least one answer)")
    for index, answer in enumerate(value):
        if isinstance(answer, (list, dict)) or answer is None:
            what = "null" if answer is None else f"a {'list' if isinstance(answer, list) else 'object'}"
            raise TunelabError(f"{where}: field '{name}'[{index}] is {what}; a list of answers holds texts or numbers")
    answers = tuple(_text(where, name, answer) for answer in value)
    return answers[0], answers


def _item(
    where: str,
    row: dict[str, Any],
    fmt: str,
    expected_field: str | None,
    split: str | None,
    mapping: Mapping[str, str],
) -> Item:
    messages: tuple[dict[str, Any], ...] = ()
    expected: str | None = None
    answers: tuple[str, ...] = ()
    checks: tuple[str, ...] | None = None
    turns = _turns(where, row, fmt)
    if fmt == "promptfoo" and expected_field is None:
        checks, expected = promptfoo.checks(where, row)
        variables = {k: _text(where, k, v) for k, v in row.items() if not k.startswith("__") and k not in RESERVED}
    elif turns is not None:
        messages, expected = split_answer(where, turns)
        variables = {"input": messages[-1]["content"]}
        if messages[0]["role"] == "system":
            variables["system"] = messages[0]["content"]
    else:
        if expected_field is not None:
            if expected_field not in row:
                raise TunelabError(f"{where}: missing field '{expected_field}'")
            expected, answers = _expected(where, expected_field, row[expected_field])
        variables = {
            k: _text(where, k, v)
            for k, v in row.items()
            if k not in RESERVED and k != expected_field and k not in CHAT_FIELDS
        }
    for var, source in mapping.items():
        if source not in row:
            raise TunelabError(f"{where}: missing field '{source}' (mapped to variable '{var}')")
        variables[var] = _text(where, source, row[source])
    row_split = row.get("split")
    if row_split is not None and not isinstance(row_split, str):
        raise TunelabError(f"{where}: field 'split' must be a string")
    digest = content_digest(variables, expected, answers, messages, checks)
    item_id = row.get("id", digest[:ID_CHARS])
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise TunelabError(f"{where}: field 'id' must be a string or integer")
    source = row.get(SOURCE_FIELD, "")
    if not isinstance(source, str):
        raise TunelabError(f"{where}: field '{SOURCE_FIELD}' must be a string (the source row's digest)")
    split = split or row_split
    return Item(str(item_id), variables, expected, where, split, messages, checks, answers, digest, "id" in row, source)


ID_CHARS = 12  # a row without an id is named by this much of its digest


def content_digest(
    variables: Mapping[str, str],
    expected: str | None,
    answers: tuple[str, ...],
    messages: tuple[dict[str, Any], ...],
    checks: tuple[str, ...] | None,
) -> str:
    """A row's identity by content: what the loader read of it (its variables, answers, turns and checks),
    normalized, so the same row has one digest in JSONL or CSV, at any line, in any file."""
    body = json.dumps(
        [dict(variables), expected, list(answers), list(messages), checks], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _turns(where: str, row: dict[str, Any], fmt: str) -> list[dict[str, Any]] | None:
    """The row as chat turns, or None for a row of fields (plain, or alpaca without history)."""
    if fmt == "chat" and "messages" in row:
        return openai_turns(where, row["messages"])
    if fmt == "chat":  # TRL: `prompt` turns, then `completion` turns (or the answer's text)
        completion = row.get("completion")
        answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return openai_turns(where, row.get("prompt"), "prompt") + openai_turns(where, answer, "completion")
    if fmt == "sharegpt":
        return sharegpt_turns(where, row)
    if fmt == "alpaca" and row.get("history"):
        question = _text(where, "instruction", row.get("instruction", ""))
        if row.get("input"):
            question = f"{question}\n\n{_text(where, 'input', row['input'])}"
        system = row.get("system")
        turns = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
        turns += [*history_turns(where, row["history"]), {"role": "user", "content": question}]
        if "output" in row:
            turns.append({"role": "assistant", "content": _text(where, "output", row["output"])})
        return turns
    return None
