"""`tunelab history ...`: search, show, tag, star, label, note, export, import and add-to-dataset, headless.

tunelab history [list|search] [WORDS and key:value filters] [--tag T] [--kind K] [--starred] [--json]
tunelab history show ID | tag ID T... [--remove] | star ID [--off] | label ID good|bad|none [--correction TEXT]
tunelab history note ID TEXT | export [filters] --format jsonl|csv|training [--out F] | import FILE
tunelab history add-to-dataset [filters] --dataset PATH
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui.cli.options import command_at

ACTIONS = ("list", "search", "show", "tag", "star", "label", "note", "export", "import", "add-to-dataset")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "words",
        nargs="*",
        help="search words and filters (kind:, model:, adapter:, prompt:, tag:, is:starred, label:, since:, until:)",
    )
    p.add_argument("--tag", action="append", default=[], help="only records with this tag (repeatable)")
    p.add_argument("--kind", default=None, help="generation, eval or train")
    p.add_argument("--starred", action="store_true", help="only starred records")
    p.add_argument("--label", default=None, help="good, bad, corrected or any")


def _record(actions: Any, name: str, helptext: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = actions.add_parser(name, help=helptext, description=helptext)
    p.add_argument("id", help="record id (prefix)")
    return p


def add_parser(sub: Any) -> None:
    hist = sub.add_parser(
        "history",
        help="search saved generations, eval and training runs; label, export, import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = hist.add_subparsers(dest="action", metavar="ACTION", parser_class=type(hist))
    for name in ("list", "search"):
        p = actions.add_parser(name, help="records matching words and filters, newest first")
        _filters(p)
        p.add_argument("-n", "--limit", type=int, default=20, help="most records to list")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
    _record(actions, "show", "one record, whole").add_argument("--json", action="store_true", help="on one line")
    p = _record(actions, "tag", "add (or --remove) tags")
    p.add_argument("tags", nargs="+", help="tags, with or without #")
    p.add_argument("--remove", action="store_true", help="remove the tags instead")
    _record(actions, "star", "star (or --off) a record").add_argument("--off", action="store_true", help="unstar")
    p = _record(actions, "label", "label an output good or bad (or none), with an optional correction")
    p.add_argument("value", choices=["good", "bad", "none"], help="the label")
    p.add_argument("--correction", default=None, help="the corrected output")
    _record(actions, "note", "attach a note").add_argument("text", nargs="+", help="the note")
    p = actions.add_parser("export", help="write matching records as jsonl, csv or training rows")
    _filters(p)
    p.add_argument("--format", default="jsonl", help="jsonl, csv or training")
    p.add_argument("--out", default=None, help="a file (default: stdout)")
    actions.add_parser("import", help="add records from a .jsonl export (never twice)").add_argument(
        "file", help="the .jsonl file"
    )
    p = actions.add_parser("add-to-dataset", help="append good and corrected outputs to a dataset's train.jsonl")
    _filters(p)
    p.add_argument("--dataset", required=True, help="a dataset folder or .jsonl file")


def normalize(argv: list[str]) -> list[str]:
    """`tunelab history WORDS` searches: when the first word after `history` is no action, `list` goes in
    front of it (and `history search show` finds the word "show")."""
    at = command_at(argv)
    if at is None or argv[at] != "history":
        return argv
    at += 1
    rest = argv[at:]
    if not rest or rest[0] in ACTIONS or rest[0] in {"-h", "--help"}:
        return argv
    return [*argv[:at], "list", *rest]


def _query(args: argparse.Namespace, words: list[str]):
    from core.history.query import parse_query

    return parse_query(" ".join(_quoted(w) for w in words)).with_filters(
        tags=getattr(args, "tag", []),
        kind=getattr(args, "kind", None),
        starred=getattr(args, "starred", False),
        label=getattr(args, "label", None),
    )


def _quoted(word: str) -> str:
    return f'"{word}"' if " " in word else word


def _line(row: dict[str, Any]) -> str:
    marks = {"good": "+", "bad": "-", "corrected": "~"}
    flags = ("*" if row.get("starred") else " ") + marks.get(str(row.get("label")), " ")
    who = row.get("adapter") or row.get("model") or ""
    tags = " ".join(f"#{t}" for t in row.get("tags") or ())
    return (
        f"{row['id']}  {row['created_at'][:19]}  {flags} {row.get('kind', ''):10} {who[:20]:20} "
        f"{row.get('prompt', '')[:30]!r} -> {row.get('output', '')[:30]!r} {tags}"
    ).rstrip()


def run(args: argparse.Namespace) -> int:
    from core.history.store import History
    from core.storage.paths import data_dir

    history = History(data_dir())
    try:
        return ACTION_RUNNERS[args.action or "list"](history, args)
    finally:
        for problem in history.problems:
            print(f"tunelab: warning: {problem}", file=sys.stderr)


def _list(history, args) -> int:
    words, limit, as_json = getattr(args, "words", []), getattr(args, "limit", 20), getattr(args, "json", False)
    page = history.search(_query(args, words), limit=limit)
    for row in page.rows:
        row.pop("shard", None)
        print(json.dumps(row, ensure_ascii=False) if as_json else _line(row))
    return 0


def _show(history, args) -> int:
    record = history.get(history.resolve(args.id))
    print(json.dumps(record, indent=None if args.json else 2, ensure_ascii=False))
    return 0


def _tag(history, args) -> int:
    change = {"remove_tags" if args.remove else "add_tags": args.tags}
    record = history.update(history.resolve(args.id), **change)
    print(" ".join(f"#{t}" for t in record["tags"]) or "(no tags)")
    return 0


def _star(history, args) -> int:
    history.update(history.resolve(args.id), starred=not args.off)
    return 0


def _label(history, args) -> int:
    changes: dict[str, Any] = {"label": None if args.value == "none" else args.value}
    if args.correction is not None:
        changes["correction"] = args.correction or None
    history.update(history.resolve(args.id), **changes)
    return 0


def _note(history, args) -> int:
    history.update(history.resolve(args.id), note=" ".join(args.text))
    return 0


def _export(history, args) -> int:
    from pathlib import Path

    from core.history.io import export_history

    out = Path(args.out) if args.out else None
    count = export_history(history, _query(args, args.words), args.format, out, sys.stdout)
    print(f"exported {count} record(s)" + (f" to {out}" if out else ""), file=sys.stderr)
    return 0


def _import(history, args) -> int:
    from pathlib import Path

    from core.history.io import import_history

    added, skipped = import_history(history, Path(args.file))
    print(f"imported {added} record(s), skipped {skipped} already stored")
    return 0


def _add_to_dataset(history, args) -> int:
    from pathlib import Path

    from core.history.io import add_to_dataset

    count = add_to_dataset(history, _query(args, args.words), Path(args.dataset))
    print(f"added {count} labelled example(s) to {args.dataset}")
    return 0


ACTION_RUNNERS = {
    "list": _list,
    "search": _list,
    "show": _show,
    "tag": _tag,
    "star": _star,
    "label": _label,
    "note": _note,
    "export": _export,
    "import": _import,
    "add-to-dataset": _add_to_dataset,
}
