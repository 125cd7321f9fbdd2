"""The data-budget curve as the front ends show it: a table with a row per size, and a text chart of pass rate
(0-100%) against labelled rows on a log axis, each arm a letter at its rate over a bar for its 95% interval, the
sizes joined by dots. Cells carry the arm they draw, so the CLI prints the letters and the TUI colours them: one
layout for both."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.evals.budget_curve import Arm, Curve, Point
from core.evals.verdict import p_text

MARKS = {"prompt": "P", "lora": "L", "both": "B"}  # drawn in this order: the LoRA's letter over the others
OFFSETS = {"prompt": -1, "lora": 0, "both": 1}  # the arms of one size side by side, never on one column
AXIS = 5  # `100%` and the axis line
TICKS = (1.0, 0.75, 0.5, 0.25, 0.0)
LEGEND = (("prompt", "P best prompt  "), ("lora", "L LoRA  "), ("both", "B LoRA with the best prompt  "))
CAPTION = "labelled rows (log scale)"

Cells = list[list[tuple[str, str]]]  # rows of (character, what it draws: an arm's name, "axis" or "")


COLUMNS = ("rows", "best prompt", "prompt", "LoRA", "LoRA+prompt", "LoRA-prompt", "p adjusted")


def curve_table(curve: Curve) -> list[tuple[str, ...]]:
    """A row per size: its best prompt (of how many), each arm's pass rate and interval, the LoRA's lead and
    the adjusted p-value (`*`: a real difference)."""
    return [
        (
            p.name,
            f"{p.prompt.label} (of {p.candidates})",
            _rate(p.prompt),
            _rate(p.lora),
            _rate(p.both),
            f"{p.delta:+.1f}",
            p_text(p.p_adjusted).removeprefix("p = ").removeprefix("p ") + (" *" if i in curve.real else ""),
        )
        for i, p in enumerate(curve.points)
    ]


def _rate(arm: Arm) -> str:
    low, high = arm.ci
    return f"{arm.rate * 100:.1f}% [{low * 100:.0f}-{high * 100:.0f}]"


def chart_cells(points: Sequence[Point], width: int = 72, height: int = 12) -> Cells:
    """The chart in `width` columns: `height` rows of plot, then the axis, the sizes, the caption and legend."""
    plot_w, plot_h = max(16, width - AXIS), max(5, height)
    grid: Cells = [[(" ", "")] * plot_w for _ in range(plot_h)]
    columns = _columns([p.size for p in points], plot_w)

    def row(rate: float) -> int:
        return round((1 - min(1.0, max(0.0, rate))) * (plot_h - 1))

    def put(r: int, c: int, char: str, what: str, over: bool = True) -> None:
        if 0 <= c < plot_w and (over or grid[r][c][0] == " "):
            grid[r][c] = (char, what)

    for arm, offset in OFFSETS.items():  # the joins first: bars and letters go over them
        spots = [(columns[i] + offset, row(getattr(p, arm).rate)) for i, p in enumerate(points)]
        for (c0, r0), (c1, r1) in zip(spots, spots[1:]):
            for c in range(c0 + 1, c1):
                put(round(r0 + (r1 - r0) * (c - c0) / (c1 - c0)), c, "·", arm, over=False)
    for arm, offset in OFFSETS.items():
        for i, p in enumerate(points):
            low, high = getattr(p, arm).ci
            for r in range(row(high), row(low) + 1):
                put(r, columns[i] + offset, "│", arm)
    for arm, offset in OFFSETS.items():
        for i, p in enumerate(points):
            put(row(getattr(p, arm).rate), columns[i] + offset, MARKS[arm], arm)
    labels = {row(t): f"{t:.0%}" for t in TICKS}
    out: Cells = [
        [*_text(f"{labels.get(r, ''):>{AXIS - 1}}", "axis"), ("┤" if r in labels else "│", "axis"), *line]
        for r, line in enumerate(grid)
    ]
    axis = ["┬" if c in columns else "─" for c in range(plot_w)]
    out.append(_text(" " * (AXIS - 1) + "└" + "".join(axis), "axis"))
    out.append(_text(" " * AXIS + _under(points, columns, plot_w), "axis"))
    out.append(_text(" " * AXIS + CAPTION, "axis"))
    legend = [cell for arm, words in LEGEND for cell in [(words[0], arm), *_text(words[1:], "axis")]]
    out.append([*_text(" " * AXIS, "axis"), *legend, *_text("│ 95% interval", "axis")])
    return out


def chart_text(points: Sequence[Point], width: int = 72, height: int = 12) -> str:
    """The chart as plain text (the CLI's)."""
    return "\n".join("".join(char for char, _ in line).rstrip() for line in chart_cells(points, width, height))


def _columns(sizes: Sequence[int], width: int) -> list[int]:
    """Each size's column on a log axis, with room at both ends for the arms' side columns and the labels."""
    margin = 4
    low, high = math.log(min(sizes)), math.log(max(sizes))
    span = width - 1 - 2 * margin
    if high == low:
        return [width // 2 for _ in sizes]
    return [margin + round((math.log(s) - low) / (high - low) * span) for s in sizes]


def _under(points: Sequence[Point], columns: Sequence[int], width: int) -> str:
    """The sizes' names centred under their ticks; a name that would run into the one before is left out."""
    line = [" "] * width
    free = 0
    for p, c in zip(points, columns):
        start = max(free, min(width - len(p.name), c - len(p.name) // 2))
        if start + len(p.name) > width or (start > c and start - c > 1):
            continue
        line[start : start + len(p.name)] = p.name
        free = start + len(p.name) + 1
    return "".join(line)


def _text(text: str, what: str) -> list[tuple[str, str]]:
    return [(char, what) for char in text]
