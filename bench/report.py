"""The results table, made from `bench/results/latest.json` and nothing else: written to `latest.md` and
into the README's Performance section between its markers. `python -m bench.report` redoes both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LATEST = RESULTS / "latest.json"
README = ROOT / "README.md"
START, END = (
    "<!-- bench table: made by `python -m bench.report` from bench/results/latest.json -->",
    "<!-- end of bench table -->",
)


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g} {unit}".strip()


def verdict(row: dict[str, Any]) -> str:
    if row.get("value") is None:
        return "not measured"
    if row.get("reliable") is False:
        return f"unreliable ({row['noise']})" if row.get("noise") else "unreliable"
    return {True: "yes", False: "**no**", None: "-"}[row.get("met")]


def _figure(row: dict[str, Any]) -> str:
    if row.get("ratio") is not None:
        return f"{row['ratio']:.2f}x"
    return _number(row.get("value"), row.get("unit", ""))


def summary(payload: dict[str, Any]) -> str:
    """The sentence under the table, written from the rows (never typed): what met, missed or was unsure."""
    rows = [r for r in payload["results"] if r.get("value") is not None]
    missed = [r for r in rows if r.get("met") is False and r.get("reliable") is not False]
    shaky = [r for r in rows if r.get("reliable") is False]
    met = [r for r in rows if r.get("met") is True and r.get("reliable") is not False]
    parts = [f"{len(met)} of {len(rows)} measured rows met their target"]
    if missed:
        parts.append("missed: " + "; ".join(f"{r['name']} ({_figure(r)}, target {r['target']})" for r in missed))
    if shaky:
        parts.append("unreliable: " + "; ".join(f"{r['name']} ({r.get('noise') or 'busy'})" for r in shaky))
    unmeasured = len(payload["results"]) - len(rows)
    if unmeasured:
        parts.append(f"{unmeasured} not measured")
    return ". ".join(parts) + "."


def where(payload: dict[str, Any]) -> str:
    """The machine the figures come from; sections kept from a run on another machine are named apart."""
    sections: dict[str, list[str]] = {}
    for row in payload["results"]:
        listed = sections.setdefault(row.get("machine") or payload["machine"], [])
        if row.get("section") and row["section"] not in listed:
            listed.append(row["section"])
    if len(sections) <= 1:
        return payload["machine"]
    return " and ".join(f"{machine} ({', '.join(names)})" for machine, names in sections.items())


def table(payload: dict[str, Any]) -> str:
    lines = [
        f"Measured on {where(payload)}; sections run {', '.join(payload['dates'])}.",
        "",
        "| measure | tunelab | baseline (same run) | ratio | spread | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in payload["results"]:
        if row.get("value") is None:
            lines.append(f"| {row['name']} | - | - | - | - | {row['target']} | not measured: {row['note']} |")
            continue
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else "-"
        lines.append(
            f"| {row['name']} | {_number(row['value'], row['unit'])} | {_number(row['baseline'], row['unit'])} "
            f"| {ratio} | {row.get('spread') or '-'} | {row['target']} | {verdict(row)} |"
        )
    for row in payload["results"]:  # a measure's own detail: the import times, the training profile
        detail = (row.get("extra") or {}).get("table")
        if detail:
            lines += ["", f"{detail['title']}:", "", "| " + " | ".join(detail["columns"]) + " |"]
            lines.append("|" + "---|" * len(detail["columns"]))
            lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in detail["rows"]]
    growth = payload.get("cost_growth") or []
    if growth:
        batches = sorted({int(b) for g in growth for b in g.get("eval_items_per_s", {})})
        lines += [
            "",
            "| model | params | gen ms/token (prompt 32 / 256) | LoRA step s, batch 4 (seq 64 / 256) "
            f"| eval items/s, batch {' / '.join(map(str, batches)) or '-'} (16 items, 16 tokens) |",
            "|---|---|---|---|---|",
        ]
        for g in growth:
            rates = g.get("eval_items_per_s") or {}
            lines.append(
                f"| {g['model']} | {g['params_m']}M | {g['gen_ms_per_token_prompt32']} / "
                f"{g['gen_ms_per_token_prompt256']} | {g['train_step_s_seq64']} / {g['train_step_s_seq256']} "
                f"| {' / '.join(str(rates.get(str(b), rates.get(b, '-'))) for b in batches) or '-'} |"
            )
    lines += ["", summary(payload)]
    return "\n".join(lines) + "\n"


def with_table(readme: str, text: str) -> str:
    """The README with the text between the markers replaced (the markers must be there, once each)."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md needs the bench table markers once each:\n{START}\n{END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{text}{END}{tail}"


def write(payload: dict[str, Any]) -> str:
    text = table(payload)
    (RESULTS / "latest.md").write_text(text)
    README.write_text(with_table(README.read_text(), text))
    return text


def main() -> int:
    print(write(json.loads(LATEST.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
