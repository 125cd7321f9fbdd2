"""Line charts in braille (2x4 dots per cell) with a y axis and x labels: training curves in a terminal
(against steps), an optimize search's best pass rate (against calls), several series overlaid, re-drawn
only when new points arrive."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row in cell][column in cell]
AXIS_WIDTH = 8


def plot(
    series: list[tuple[list[tuple[float, float]], str]],
    width: int,
    height: int,
    x_name: str = "step",
    waiting: str = "waiting for the first step…",
    marks: tuple[tuple[float, str], ...] = (),
) -> Text:
    """Render `(points, style)` series into `width` x `height` cells, y axis on the left, x named `x_name`
    (`waiting` until there is a point), and each `(x, style)` mark as a vertical line (where a run stopped early)."""
    points = [p for pts, _ in series for p in pts]
    plot_w, plot_h = max(1, width - AXIS_WIDTH), max(1, height - 1)
    if not points:
        return Text(waiting, style="dim")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    dots_w, dots_h = plot_w * 2, plot_h * 4
    cells: dict[tuple[int, int], tuple[int, str]] = {}

    def put(dx: int, dy: int, style: str) -> None:
        key = (dy // 4, dx // 2)
        bits, _ = cells.get(key, (0, style))
        cells[key] = (bits | DOTS[dy % 4][dx % 2], style)

    for x, style in marks:
        if x0 <= x <= x1:
            dx = round((x - x0) / (x1 - x0) * (dots_w - 1)) if x1 > x0 else 0
            for dy in range(dots_h):
                put(dx, dy, style)
    for pts, style in series:
        last = None
        for x, y in sorted(pts):
            dx = round((x - x0) / (x1 - x0) * (dots_w - 1)) if x1 > x0 else 0
            dy = round((y1 - y) / (y1 - y0) * (dots_h - 1))
            if last is not None:  # join neighbours so a steep drop stays a line
                (lx, ly), steps = last, max(abs(dx - last[0]), abs(dy - last[1]), 1)
                for i in range(1, steps):
                    put(lx + (dx - lx) * i // steps, ly + (dy - ly) * i // steps, style)
            put(dx, dy, style)
            last = (dx, dy)

    text = Text()
    for row in range(plot_h):
        label = f"{y1:.3g}" if row == 0 else f"{y0:.3g}" if row == plot_h - 1 else ""
        text.append(f"{label:>{AXIS_WIDTH - 1}}┤" if label else " " * (AXIS_WIDTH - 1) + "│", style="dim")
        for col in range(plot_w):
            bits, style = cells.get((row, col), (0, ""))
            text.append(chr(0x2800 + bits) if bits else " ", style=style)
        text.append("\n")
    left, right = f"{x0:g}", f"{x_name} {x1:g}"
    text.append(" " * (AXIS_WIDTH - 1) + "└" + left + right.rjust(max(0, plot_w - len(left))), style="dim")
    return text


class LossChart(Widget):
    """Training loss (and eval loss) of one or more runs; `series` is replaced as data arrives."""

    DEFAULT_CSS = "LossChart { height: 1fr; min-height: 4; }"

    def __init__(self, x_name: str = "step", waiting: str = "waiting for the first step…", **kwargs) -> None:
        super().__init__(**kwargs)
        self.x_name, self.waiting = x_name, waiting  # the x axis: training steps, or an optimize search's calls
        self.series: list[tuple[list[tuple[float, float]], str]] = []
        self.marks: tuple[tuple[float, str], ...] = ()

    def set_series(
        self, series: list[tuple[list[tuple[float, float]], str]], marks: tuple[tuple[float, str], ...] = ()
    ) -> None:
        self.series, self.marks = series, marks
        self.refresh()

    def render(self) -> Text:
        return plot(self.series, self.size.width, self.size.height, self.x_name, self.waiting, self.marks)
