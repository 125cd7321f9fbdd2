"""A comparison as a file to share: the grid, the verdict and its notes, readable offline.

`.md` is GitHub-flavoured Markdown; `.html` is one self-contained page (no scripts, no fetches).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from core.errors import TunelabError
from core.storage.atomic import write_atomic

HEADERS = ("cell", "pass", "95% CI", "trials", "latency", "tokens")


def rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for v in summary["variants"]:
        lo, hi = v["ci"]
        latency = f"{v['mean_latency_s'] * 1000:.0f} ms" if v.get("mean_latency_s") is not None else "cached"
        tokens = f"{v['mean_completion_tokens']:.1f}" if v.get("mean_completion_tokens") is not None else "-"
        out.append(
            (
                str(v["label"]),
                f"{v['pass_rate'] * 100:.1f}%",
                f"{lo * 100:.1f}-{hi * 100:.1f}",
                str(v["trials"]),
                latency,
                tokens,
            )
        )
    return out


def write_report(path: Path, summary: dict[str, Any], sentence: str, notes: list[str]) -> Path:
    title = (
        f"tunelab compare {summary['id']}: {summary['dataset']}:{summary['split'] or 'all'}, grader {summary['grader']}"
    )
    if path.suffix == ".md":
        lines = [f"# {title}", "", f"**{sentence}**", "", *(f"- {n}" for n in notes), ""]
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(summary)]
        text = "\n".join(lines) + "\n"
    elif path.suffix in (".html", ".htm"):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows(summary))
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        text = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p><strong>{html.escape(sentence)}</strong></p><ul>{items}</ul>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
        )
    else:
        raise TunelabError(f"--report {path}: write a .md or .html file")
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise TunelabError(f"--report {path}: {exc.strerror or exc}") from None
    return path
