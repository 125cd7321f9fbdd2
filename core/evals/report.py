"""A comparison as text and as a file to share: the grid, the verdict, its notes, the costs, a bar chart of
pass rates with their intervals and the training loss curves.

`.md` is GitHub-flavoured Markdown; `.html` is one self-contained page (no scripts, no fetches). Charts are
drawn by matplotlib as inline SVG, imported only when a report is written.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, assert_never

from core.errors import TunelabError
from core.evals.grid import Cell, Column, Grid, Row, RowKind
from core.storage.atomic import write_atomic
from core.storage.schemas import EvalHeadline

Curve = Sequence[tuple[int, float]]  # (step, loss)
TRAIN_PASSES = 3  # a trained token costs a forward and a backward pass: about three forward passes


def rate_text(cell: Cell) -> str:
    """`93.3% [82-98]`, with `±2.1` across seeds."""
    lo, hi = cell.ci
    spread = f" ±{cell.spread * 100:.1f}" if cell.spread is not None else ""
    return f"{cell.pass_rate * 100:.1f}%{spread} [{lo * 100:.0f}-{hi * 100:.0f}]"


def usage_text(cell: Cell) -> str:
    """`41 ms 12+4 tok`: mean latency, prompt + completion tokens per call."""
    latency = f"{cell.latency_s * 1000:.0f} ms" if cell.latency_s is not None else "cached"
    prompt = f"{cell.prompt_tokens:.0f}" if cell.prompt_tokens is not None else "?"
    completion = f"{cell.completion_tokens:.0f}" if cell.completion_tokens is not None else "?"
    return f"{latency} {prompt}+{completion} tok"


def row_cost(row: Row) -> str:
    """A LoRA's cost: training wall time and device, trainable parameters, adapter size."""
    if not row.kind.trained:
        return "no training"
    c = row.cost
    parts = []
    if "train_s" in c:
        parts.append(f"trained {c['train_s']:.0f} s on {c.get('device', '?')}")
    if "trainable_params" in c:
        parts.append(f"{c['trainable_params'] / 1e6:.2f}M params")
    if "adapter_mb" in c:
        parts.append(f"{c['adapter_mb']:.1f} MB")
    seeds = f" (each of {len(row.adapters)} seeds)" if len(row.adapters) > 1 else ""
    return (", ".join(parts) or "cost unknown (trained elsewhere)") + seeds


def column_cost(col: Column) -> str:
    """A prompt's cost: the prompt tokens it adds to every call, and the latency they add."""
    if not col.key:
        return "no prompt"
    c = col.cost
    if not c:
        return "no 'no prompt' cell to price it against"
    parts = []
    if "extra_prompt_tokens" in c:
        parts.append(f"{c['extra_prompt_tokens']:+.0f} prompt tokens per call")
    if "added_latency_s" in c:
        parts.append(f"{c['added_latency_s'] * 1000:+.0f} ms")
    return ", ".join(parts)


def grid_table(grid: Grid) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per model variant, one column per prompt; an empty cell is '-'."""
    header = ["model variant", *(c.label for c in grid.cols)]
    body = []
    for r, row in enumerate(grid.rows):
        cells = [grid.cell(r, c) for c in range(len(grid.cols))]
        body.append([row.label, *(f"{rate_text(x)} · {usage_text(x)}" if x else "-" for x in cells)])
    return header, body


def served_cost(grid: Grid, r: int) -> str:
    """A served row's cost per call (the mean over its cells: latency, prompt and completion tokens) and,
    when its endpoint sets prices, money per 1,000 calls: what its verdict weighs against a LoRA's training."""
    cells = [cell for (row, _), cell in grid.cells.items() if row == r]

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) / len(known) if known else None

    latency = mean([c.latency_s for c in cells])
    prompt, completion = mean([c.prompt_tokens for c in cells]), mean([c.completion_tokens for c in cells])
    parts = [f"served by {grid.rows[r].cost.get('served', grid.rows[r].model)}"]
    if latency is not None:
        parts.append(f"{latency:.2f} s per call")
    if prompt is not None and completion is not None:
        parts.append(f"{prompt:.0f}+{completion:.0f} tokens per call")
        price_in, price_out = grid.rows[r].cost.get("price_in"), grid.rows[r].cost.get("price_out")
        if price_in is not None or price_out is not None:
            money = 1000 * (prompt * (price_in or 0.0) + completion * (price_out or 0.0)) / 1e6
            parts.append(f"{money:.4g} per 1,000 calls (the endpoint's prices)")
        else:
            parts.append("no prices set (price_in, price_out per million tokens in its [endpoints] table)")
    return ", ".join(parts)


def kind_cost(grid: Grid, r: int) -> str | None:
    """What row `r` costs, by its kind: a LoRA's training, a served model's calls; None for a local base."""
    row = grid.rows[r]
    match row.kind:
        case RowKind.LORA | RowKind.DISTILLED:
            return row_cost(row)
        case RowKind.SERVED:
            return served_cost(grid, r)
        case RowKind.BASE | RowKind.OPTIMIZED:  # nothing trained, nothing paid per call
            return None
        case _:
            assert_never(row.kind)


def costs(grid: Grid) -> list[str]:
    """Each LoRA's training, each served model's calls and each prompt's extra tokens, one line each."""
    rows = [f"{row.label}: {cost}" for r, row in enumerate(grid.rows) if (cost := kind_cost(grid, r)) is not None]
    columns = [f"{col.label}: {column_cost(col)}" for col in grid.cols if col.key]
    return rows + columns + break_even(grid) + [line for r in range(len(grid.rows)) if (line := distilled(grid, r))]


def break_even(grid: Grid) -> list[str]:
    """For each prompt that adds time to every call, after how many calls a LoRA's one-off training time is
    the cheaper of the two (the first LoRA row that knows its training time)."""
    trained = next((row for row in grid.rows if row.kind.trained and row.cost.get("train_s")), None)
    if trained is None:
        return []
    out = []
    for col in grid.cols:
        added = col.cost.get("added_latency_s") if col.key else None
        if isinstance(added, (int, float)) and added > 0:
            calls = math.ceil(float(trained.cost["train_s"]) / added)
            out.append(
                f"break-even: {trained.label}'s {float(trained.cost['train_s']):.0f} s of training costs less than "
                f"{col.label}'s {col.cost.get('extra_prompt_tokens', 0):+.0f} prompt tokens "
                f"({added * 1000:+.1f} ms) per call after {calls:,} calls"
            )
    return out


def distilled(grid: Grid, r: int) -> str | None:
    """A distilled LoRA (no prompt) beside the prompt it replaces on the base: both pass rates, the prompt
    tokens each call saves, and after how many calls its one-off training has cost less than those tokens
    (its training's tokens, each a forward and a backward pass: about 3 forward passes, against the prompt's
    tokens each call no longer reads). None for any other row, or when either cell was not graded."""
    row = grid.rows[r]
    bare = next((c for c, col in enumerate(grid.cols) if not col.key), None)
    source = next((c for c, col in enumerate(grid.cols) if col.key and col.key == row.source), None)
    if row.kind is not RowKind.DISTILLED or bare is None or source is None or (mine := grid.cell(r, bare)) is None:
        return None
    prompted = next(
        (
            cell
            for (rr, cc), cell in sorted(grid.cells.items())
            if cc == source and grid.rows[rr].kind is RowKind.BASE and grid.rows[rr].model == row.model
        ),
        None,
    )
    if prompted is None:
        return None
    line = f"{row.label}: {rate_text(mine)} with no prompt, beside {grid.cols[source].label}'s {rate_text(prompted)}"
    if mine.prompt_tokens is None or prompted.prompt_tokens is None:
        return line
    saved = prompted.prompt_tokens - mine.prompt_tokens
    line += f"; {saved:.0f} prompt tokens per call saved"
    trained = row.cost.get("train_tokens")
    if saved > 0 and isinstance(trained, (int, float)) and trained > 0:
        calls = math.ceil(TRAIN_PASSES * trained / saved)
        line += (
            f"; break-even after {calls:,} calls (its training read {trained:,.0f} tokens, each about "
            f"{TRAIN_PASSES} forward passes)"
        )
    return line


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.find("<svg") :]  # inline in HTML: no XML prolog


def charts(grid: Grid, curves: Mapping[str, Curve]) -> list[tuple[str, str]]:
    """(title, SVG) for the pass-rate bars with their intervals and, when runs logged any, the loss curves."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit
    from matplotlib.figure import Figure

    cells = grid.all()
    labels = [f"{grid.cols[c.col].label}\n{grid.rows[c.row].label}" for c in cells]
    rates = [c.pass_rate * 100 for c in cells]
    errors = [[r - c.ci[0] * 100 for r, c in zip(rates, cells)], [c.ci[1] * 100 - r for r, c in zip(rates, cells)]]
    figure = Figure(figsize=(max(5.0, 1.6 * len(cells)), 3.6))
    axes = figure.subplots()
    axes.bar(range(len(cells)), rates, yerr=errors, capsize=4, color="#4c78a8")
    axes.set_xticks(range(len(cells)), labels, fontsize=7)
    axes.set_ylabel("pass rate, % (95% interval)")
    axes.set_ylim(0, 100)
    out = [("Pass rate per cell", _svg(figure))]
    if curves:
        figure = Figure(figsize=(6.0, 3.4))
        axes = figure.subplots()
        for name, points in curves.items():
            axes.plot([s for s, _ in points], [loss for _, loss in points], label=name)
        axes.set_xlabel("step")
        axes.set_ylabel("training loss")
        axes.legend(fontsize=7)
        out.append(("Training loss", _svg(figure)))
    return out


def write_report(
    path: Path,
    summary: EvalHeadline,
    grid: Grid,
    sentence: str,
    notes: list[str],
    curves: Mapping[str, Curve] | None = None,
) -> Path:
    title = f"tunelab compare {summary.id}: {summary.scope}, grader {summary.grader}"
    header, body = grid_table(grid)
    if path.suffix not in (".md", ".html", ".htm"):
        raise TunelabError(f"{{0}} {path}: write a .md or .html file", "report")
    drawn = charts(grid, curves or {})
    if path.suffix == ".md":
        lines = [f"# {title}", "", f"**{sentence}**", "", *(f"- {n}" for n in notes), ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        lines += ["", "## Cost", "", *(f"- {c}" for c in costs(grid)), ""]
        for name, svg in drawn:
            data = base64.b64encode(svg.encode()).decode()
            lines += [f"## {name}", "", f"![{name}](data:image/svg+xml;base64,{data})", ""]
        text = "\n".join(lines)
    else:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        spent = "".join(f"<li>{html.escape(c)}</li>" for c in costs(grid))
        figures = "".join(f"<h2>{html.escape(name)}</h2><figure>{svg}</figure>" for name, svg in drawn)
        text = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}svg{max-width:100%;height:auto}"
            f"</style></head><body><h1>{html.escape(title)}</h1><p><strong>{html.escape(sentence)}</strong></p>"
            f"<ul>{items}</ul><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            f"<h2>Cost</h2><ul>{spent}</ul>{figures}</body></html>\n"
        )
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise TunelabError(f"{{0}} {path}: {exc.strerror or exc}", "report") from None
    return path
