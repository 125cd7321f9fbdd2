"""The verdict: prompt, LoRA, or both? Which cell of a comparison wins, by how much, and whether the
difference is real, from a paired test on the same items.

Cells are those of the eval's grid (no prompt / prompt versions x base / LoRAs, seeds of one LoRA in one
cell). The winner is the cell with the best pass rate; it is set against the best cell of another approach (prompt alone,
LoRA alone, LoRA with a prompt, or the bare base when there is only one approach), and the two are compared
item by item (`core.evals.stats`: exact McNemar on single runs, where only the items one gets right and the
other wrong carry evidence; a paired permutation test on pass fractions for seeds and repeats). When more
configurations were tried on these items (`tried`, counted from history by the workbench), the p-value is
adjusted for keeping the best, and "a real difference" rests on the adjusted one. Beside "not a real
difference" it says how big a difference these items could have shown, at the planner's discordance or the
upper 95% bound of the observed one when higher (the observed one itself would be post-hoc power: it flatters
the items when the two cells happened to agree often).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.data.datasets import SEALED
from core.errors import TunelabError
from core.evals.grid import Cell, Grid, build_grid
from core.evals.stats import ALPHA, POWER, adjusted, detectable, mcnemar_exact, paired_p, power_discordance
from core.storage.schemas import EvalSummary

__all__ = ["Verdict", "mcnemar_exact", "verdict"]

SIGNIFICANT = ALPHA
APPROACHES = {
    (False, False): "the base model alone",
    (True, False): "the prompt alone",
    (False, True): "the LoRA alone",
    (True, True): "the LoRA with the prompt",
}


@dataclass(frozen=True)
class Verdict:
    winner: tuple[int, int]  # (row, column) of the grid
    other: tuple[int, int]
    winner_label: str
    other_label: str
    winner_rate: float
    other_rate: float
    delta: float  # points
    p_value: float
    fixed: int  # items the winner gets right and the other wrong
    broken: int
    n_items: int
    sentence: str
    p_adjusted: float = 1.0  # for the selection: the best of `tried` configurations on these items
    tried: int = 1
    detectable: float = 1.0  # the smallest difference (proportion) these items find 80% of the time
    split: str | None = None  # the split the verdict stands on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(
    summary: EvalSummary, grid: Grid | None = None, tried: int = 1, registered: list[str] | None = None
) -> Verdict:
    """The verdict over a complete eval of at least two cells (of `grid`, when its LoRA seeds are grouped);
    a partial eval never gives one. `tried`: the configurations evaluated on these items, this eval's and
    earlier ones (the selection the p-value is adjusted for). `registered`: the labels of the two cells chosen
    on the dev rows before a final look, the only two it tests; a look on the sealed split with none
    registered picks among all its cells, so its adjustment covers every pair of them."""
    if not summary.done:
        raise TunelabError(f"eval {summary.id} is {summary.status}: a partial eval gives no verdict")
    grid = grid or build_grid(summary)
    cells = grid.all()
    if len(cells) < 2:
        raise TunelabError(f"eval {summary.id} has one cell: a verdict needs two to compare")
    chosen = [cell for label in registered or () for cell in cells if cell.label == label]
    pairs = 1
    if len(chosen) == 2:
        winner, other = sorted(chosen, key=lambda c: -c.pass_rate)  # a tie keeps the dev order
    else:
        winner, other = _best_pair(grid, cells)
        pairs = _pairs(grid, cells) if summary.split == SEALED else 1
    tried *= pairs
    fixed, broken = (len(items) for items in grid.diff(winner, other))
    shared = [i for i in winner.scores if i in other.scores]
    p, discordance = _tested(winner, other, shared)
    p_adj = adjusted(p, tried)
    a, b = winner.pass_rate * 100, other.pass_rate * 100
    wins, loses = APPROACHES[grid.approach(winner)], APPROACHES[grid.approach(other)]
    head = f"{wins[0].upper()}{wins[1:]} wins ({winner.label})"
    if a == b:
        head = f"A tie between {wins} and {loses}"
    body = f"{a:.1f}% vs {b:.1f}% for {loses} ({other.label}), {a - b:+.1f} points"
    evidence = f"fixed {fixed}, broken {broken} of {len(shared)} items"
    planned, at = power_discordance(discordance, len(shared))
    smallest = detectable(len(shared), round(planned, 3))
    counted = ", every pair of cells counted" if pairs > 1 else ""
    shown = p_text(p) + (f" ({p_text(p_adj)} for the best of {tried} tried{counted})" if tried > 1 else "")
    if p_adj < SIGNIFICANT:
        judged = f"{shown}, a real difference"
    else:
        judged = (
            f"{shown}, not a real difference: these {len(shared)} items find a difference of "
            f"{smallest * 100:.0f} points or more {POWER:.0%} of the time"
        )
        evidence += f"; the power is computed {at}"
    return Verdict(
        (winner.row, winner.col),
        (other.row, other.col),
        winner.label,
        other.label,
        round(a / 100, 4),
        round(b / 100, 4),
        round(a - b, 2),
        p,
        fixed,
        broken,
        len(shared),
        f"{_where(summary, len(chosen) == 2)}{head}: {body}, {judged} ({evidence}).",
        p_adj,
        tried,
        round(smallest, 4),
        summary.split,
    )


def _best_pair(grid: Grid, cells: list[Cell]) -> tuple[Cell, Cell]:
    """The best cell, and the best cell of another approach (of any, when there is one approach)."""
    ranked = sorted(range(len(cells)), key=lambda i: (-cells[i].pass_rate, i))
    winner = cells[ranked[0]]
    others = [cells[i] for i in ranked[1:] if grid.approach(cells[i]) != grid.approach(winner)]
    return winner, others[0] if others else cells[ranked[1]]


def _pairs(grid: Grid, cells: list[Cell]) -> int:
    """The (winner, other) pairs `_best_pair` could pick: cells of two approaches (any two with one approach)."""
    approaches = [grid.approach(c) for c in cells]
    crossed = sum(a != b for i, a in enumerate(approaches) for b in approaches[i + 1 :])
    return crossed or len(cells) * (len(cells) - 1) // 2


def _where(summary: EvalSummary, registered: bool) -> str:
    if summary.split != SEALED:
        return ""
    return (
        "On the sealed test split, the two cells chosen on the dev rows: "
        if registered
        else "On the sealed test split: "
    )


def _tested(winner: Cell, other: Cell, shared: list[str]) -> tuple[float, float]:
    """The paired p-value on the items both cells graded, and the share of them the two disagree on."""
    a = [winner.scores[i] for i in shared]
    b = [other.scores[i] for i in shared]
    discordance = sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(shared) if shared else 0.0
    return paired_p(a, b), discordance


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < SIGNIFICANT else f"p = {p:.2f}"
