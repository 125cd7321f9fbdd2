"""The verdict: prompt, LoRA, or both? Which cell of a comparison wins, by how much, and whether the
difference is real, from a paired test on the same items.

Cells are those of the eval's grid (no prompt / prompt versions x base / LoRAs, seeds of one LoRA in one
cell). The winner is the cell with the best pass rate; it is set against the best cell of another approach (prompt alone,
LoRA alone, LoRA with a prompt, or the bare base when there is only one approach), and the two are compared
item by item with the exact McNemar test: only the items one gets right and the other wrong (fixed,
broken) carry evidence, and under "no difference" each of them goes either way with probability 1/2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import TunelabError
from core.evals.grid import Grid, build_grid

SIGNIFICANT = 0.05
APPROACHES = {
    (False, False): "the base model alone",
    (True, False): "the prompt alone",
    (False, True): "the LoRA alone",
    (True, True): "the LoRA with the prompt",
}


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: the binomial probability of a split at least this uneven among
    the `fixed + broken` discordant items, each a fair coin under the null."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(summary: dict[str, Any], grid: Grid | None = None) -> Verdict:
    """The verdict over a complete eval of at least two cells (of `grid`, when its LoRA seeds are grouped);
    a partial eval never gives one."""
    if summary.get("status") != "done":
        raise TunelabError(f"eval {summary['id']} is {summary.get('status')}: a partial eval gives no verdict")
    grid = grid or build_grid(summary)
    cells = grid.all()
    if len(cells) < 2:
        raise TunelabError(f"eval {summary['id']} has one cell: a verdict needs two to compare")
    ranked = sorted(range(len(cells)), key=lambda i: (-cells[i].pass_rate, i))
    winner = cells[ranked[0]]
    others = [cells[i] for i in ranked[1:] if grid.approach(cells[i]) != grid.approach(winner)]
    other = others[0] if others else cells[ranked[1]]
    fixed_items, broken_items = grid.diff(winner, other)
    fixed, broken = len(fixed_items), len(broken_items)
    shared = sum(i in other.passed for i in winner.passed)
    p = mcnemar_exact(fixed, broken)
    a, b = winner.pass_rate * 100, other.pass_rate * 100
    wins, loses = APPROACHES[grid.approach(winner)], APPROACHES[grid.approach(other)]
    head = f"{wins[0].upper()}{wins[1:]} wins ({winner.label})"
    if a == b:
        head = f"A tie between {wins} and {loses}"
    body = f"{a:.1f}% vs {b:.1f}% for {loses} ({other.label}), {a - b:+.1f} points"
    evidence = f"fixed {fixed}, broken {broken} of {shared} items"
    if p < SIGNIFICANT:
        judged = f"p {'< 0.001' if p < 0.001 else f'= {p:.3f}'}, a real difference"
    else:
        judged = f"p = {p:.2f}, not a real difference"
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
        shared,
        f"{head}: {body}, {judged} ({evidence}).",
    )
