"""`tunelab prompts`: list, show, diff and save prompt versions; export and import them as TOML files."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import TunelabError
from tui.cli.options import workbench as _workbench
from tui.cli.output import table


def add_prompts(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "show", "diff", "save", "export", "import"], help="what to do")
    p.add_argument(
        "refs", nargs="*", help="versions (name, name@N, id); for save a .toml file; for export or import a folder"
    )


def run_prompts(args: argparse.Namespace) -> int:
    from core.data.prompts import read_prompt_file

    store = _workbench().prompts
    need = {"list": (0, 1), "show": (1, 1), "diff": (2, 2), "save": (1, 1), "export": (1, 1), "import": (1, 1)}[
        args.action
    ]
    if not need[0] <= len(args.refs) <= need[1]:
        raise TunelabError(
            f"prompts {args.action} takes {need[0]}{'' if need[0] == need[1] else f' to {need[1]}'} argument(s)"
        )
    if args.action == "list":
        table(
            ("version", "id", "created", "template"),
            [
                (
                    f"{r['name']}@{r['number']}",
                    r["id"],
                    r["created_at"][:19],
                    repr(" ".join(r["template"].split())[:50]),
                )
                for r in store.versions(args.refs[0] if args.refs else None)
            ],
        )
    elif args.action == "show":
        row, version = store.get(args.refs[0])
        print(f"{row['name']}@{row['number']} ({row['id']})")
        print(version.as_text(), end="")
    elif args.action == "diff":
        print(store.diff(*args.refs), end="")
    elif args.action in ("export", "import"):
        from core.data.promptfiles import export_prompts, import_prompts

        folder = Path(args.refs[0]).expanduser()
        if args.action == "export":
            for path in export_prompts(store, folder):
                print(f"wrote {path}")
        else:
            for name, vid in import_prompts(store, folder):
                print(f"saved {name} as {vid}")
    else:
        name, version = read_prompt_file(Path(args.refs[0]))
        store.save(name, version)
        print(f"saved {name} as {version.id}")
    return 0
