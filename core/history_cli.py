"""`tunelab history ...`: search, show, tag, star, label, note, export, import and add-to-dataset, headless.

    tunelab history [WORDS and key:value filters] [--tag T] [--kind K] [--starred] [--json]
    tunelab history show ID | tag ID T... [--remove] | star ID [--off] | label ID good|bad|none [--correction TEXT]
    tunelab history note ID TEXT | export [filters] --format jsonl|csv|training [--out F] | import FILE
    tunelab history add-to-dataset [filters] --dataset PATH
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.errors import TunelabError

ACTIONS = ("list", "show", "tag", "star", "label", "note", "export", "import", "add-to-dataset")


def add_parser(sub: Any) -> None:
    hist = sub.add_parser("history", help="search saved generations, eval and training runs; label, export, import",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hist.add_argument("words", nargs="*", help=f"an action ({', '.join(ACTIONS)}) or search words and filters "
                      "(kind:, model:, adapter:, prompt:, tag:, is:starred, label:, since:, until:)")
    hist.add_argument("--tag", action="append", default=[], help="only records with this tag (repeatable)")
    hist.add_argument("--kind", default=None, help="generation, eval or train")
    hist.add_argument("--starred", action="store_true")
    hist.add_argument("--label", default=None, help="good, bad, corrected or any")
    hist.add_argument("-n", "--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true", help="one JSON object per line")
    hist.add_argument("--format", default="jsonl", help="with export: jsonl, csv or training")
    hist.add_argument("--out", default=None, help="with export: a file (default: stdout)")
    hist.add_argument("--dataset", default=None, help="with add-to-dataset: a dataset folder or .jsonl file")
    hist.add_argument("--remove", action="store_true", help="with tag: remove the tags")
    hist.add_argument("--off", action="store_true", help="with star: unstar")
    hist.add_argument("--correction", default=None, help="with label: the corrected output")


def _query(args: argparse.Namespace, words: list[str]):
    from core.history_query import parse_query

    return parse_query(" ".join(_quoted(w) for w in words)).with_filters(
        tags=args.tag, kind=args.kind, starred=args.starred, label=args.label)


def _quoted(word: str) -> str:
    return f'"{word}"' if " " in word else word


def _line(row: dict[str, Any]) -> str:
    flags = ("*" if row.get("starred") else " ") + {"good": "+", "bad": "-", "corrected": "~"}.get(row.get("label"), " ")
    who = row.get("adapter") or row.get("model") or ""
    tags = " ".join(f"#{t}" for t in row.get("tags") or ())
    return (f"{row['id']}  {row['created_at'][:19]}  {flags} {row.get('kind', ''):10} {who[:20]:20} "
            f"{row.get('prompt', '')[:30]!r} -> {row.get('output', '')[:30]!r} {tags}").rstrip()


def run(args: argparse.Namespace) -> int:
    from core.history import History
    from core.paths import data_dir

    words = list(args.words)
    action = words.pop(0) if words and words[0] in ACTIONS else "list"
    history = History(data_dir())
    try:
        return ACTION_RUNNERS[action](history, args, words)
    finally:
        for problem in history.problems:
            print(f"tunelab: warning: {problem}", file=sys.stderr)


def _one(words: list[str], what: str, at_least: int = 1) -> list[str]:
    if len(words) < at_least:
        raise TunelabError(f"history {what}")
    return words


def _list(history, args, words) -> int:
    page = history.search(_query(args, words), limit=args.limit)
    for row in page.rows:
        row.pop("shard", None)
        print(json.dumps(row, ensure_ascii=False) if args.json else _line(row))
    return 0


def _show(history, args, words) -> int:
    rid = _one(words, "show needs a record id")[0]
    record = history.get(history.resolve(rid))
    print(json.dumps(record, indent=None if args.json else 2, ensure_ascii=False))
    return 0


def _tag(history, args, words) -> int:
    rid, *tags = _one(words, "tag needs a record id and tags", 2)
    record = history.get(history.resolve(rid))
    current = set(record.get("tags") or ())
    wanted = {t.lstrip("#") for t in tags}
    record = history.update(record["id"], tags=sorted(current - wanted if args.remove else current | wanted))
    print(" ".join(f"#{t}" for t in record["tags"]) or "(no tags)")
    return 0


def _star(history, args, words) -> int:
    rid = _one(words, "star needs a record id")[0]
    history.update(history.resolve(rid), starred=not args.off)
    return 0


def _label(history, args, words) -> int:
    rid, value = _one(words, "label needs a record id and good, bad or none", 2)[:2]
    changes: dict[str, Any] = {"label": None if value == "none" else value}
    if args.correction is not None:
        changes["correction"] = args.correction or None
    history.update(history.resolve(rid), **changes)
    return 0


def _note(history, args, words) -> int:
    rid, *text = _one(words, "note needs a record id and the text", 2)
    history.update(history.resolve(rid), note=" ".join(text))
    return 0


def _export(history, args, words) -> int:
    from pathlib import Path

    from core.history_io import export_history

    out = Path(args.out) if args.out else None
    count = export_history(history, _query(args, words), args.format, out, sys.stdout)
    print(f"exported {count} record(s)" + (f" to {out}" if out else ""), file=sys.stderr)
    return 0


def _import(history, args, words) -> int:
    from pathlib import Path

    from core.history_io import import_history

    added, skipped = import_history(history, Path(_one(words, "import needs a .jsonl file")[0]))
    print(f"imported {added} record(s), skipped {skipped} already stored")
    return 0


def _add_to_dataset(history, args, words) -> int:
    from pathlib import Path

    from core.history_io import add_to_dataset

    if not args.dataset:
        raise TunelabError("history add-to-dataset needs --dataset PATH (a dataset folder or .jsonl file)")
    count = add_to_dataset(history, _query(args, words), Path(args.dataset))
    print(f"added {count} labelled example(s) to {args.dataset}")
    return 0


ACTION_RUNNERS = {"list": _list, "show": _show, "tag": _tag, "star": _star, "label": _label, "note": _note,
                  "export": _export, "import": _import, "add-to-dataset": _add_to_dataset}
