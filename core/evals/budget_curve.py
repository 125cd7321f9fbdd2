"""The data-budget curve: prompting against a LoRA as the labelled rows grow, and where the LoRA overtakes.

The sizes are nested subsets of the training rows, in one seeded order (the 16 rows are the first 16 of the
64, and so on; `all` is every row), the same rows for both arms. At each size the prompt arm is the best of
its candidates (the prompt with 0, 1, 2, 4 or 8 demonstrations drawn by each rule, from that size's rows
only), picked on the dev rows; the LoRA arm is a LoRA trained on those rows alone; `both` is that LoRA with
the best prompt. Each size's prompt-against-LoRA difference is tested item by item on the same eval items
(exact McNemar; a paired permutation test on pass fractions with seeds), its p-value adjusted for keeping the
best of that size's candidates (Bonferroni, as the verdict adjusts; prompt versions evaluated on these items
before the curve count at every size, and so do the checkpoints a LoRA was picked from), then Holm's over the
sizes compared: every size's selection is counted, the family being every candidate at every size. The
crossover is the first size at which the LoRA is ahead by a real difference. Pure: the workbench gathers the
scores, this reads them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.data.shots import hash_of
from core.errors import TunelabError
from core.evals.stats import ALPHA, POWER, adjusted, detectable, holm, interval, paired_p, power_discordance
from core.evals.verdict import p_text

ALL = "all"
SHOT_COUNTS = (1, 2, 4, 8)  # demonstrations per candidate (capped by the size); 0 is the prompt as it is
SELECTS = ("random", "similar")


def parse_sizes(text: str) -> list[int | None]:
    """`16,64,all` as sizes (None: every training row); one line naming the flag when it is not that."""
    out: list[int | None] = []
    for part in (p.strip().lower() for p in str(text).split(",")):
        if part == ALL:
            out.append(None)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise TunelabError(f"{{0}} takes row counts like 16,64,256,all, got '{part or text}'", "budget")
    return out


def resolve_sizes(asked: Sequence[int | None], total: int, dataset: str) -> list[int]:
    """The sizes in rows, smallest first, each once; a size above the training rows is refused."""
    for size in asked:
        if size is not None and size > total:
            raise TunelabError(
                f"{{0}} {size} is above the {total} training rows of {dataset} (all: every one of them)", "budget"
            )
    return sorted({total if size is None else size for size in asked})


def nested_subsets(ids: Sequence[str], sizes: Sequence[int], seed: int = 0) -> list[tuple[str, ...]]:
    """Each size's rows: the first `size` of one seeded order of `ids`, so every smaller subset is inside every
    larger one, and a row's place never depends on the file's order."""
    order = sorted(dict.fromkeys(ids), key=lambda key: (hash_of(key, seed), key))
    return [tuple(order[:size]) for size in sizes]


def shot_choices(size: int) -> list[tuple[int, str]]:
    """The k-shot candidates a size's rows allow, besides the prompt as it is: (k, rule)."""
    return [(k, select) for k in SHOT_COUNTS if k <= size for select in SELECTS]


def best_candidate(rates: Sequence[float]) -> int:
    """The candidate kept: the highest pass rate, a tie going to the earlier one (fewer demonstrations)."""
    return min(range(len(rates)), key=lambda i: (-round(rates[i], 9), i))


@dataclass(frozen=True)
class Arm:
    """One arm at one size: its pass rate over the eval items, 95% interval, and each item's score."""

    label: str
    rate: float
    ci: tuple[float, float]
    scores: Mapping[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, label: str, scores: Mapping[str, float]) -> Arm:
        values = list(scores.values())
        return cls(label, statistics.fmean(values) if values else 0.0, interval(values), dict(scores))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "rate": round(self.rate, 4), "ci": [round(c, 4) for c in self.ci]}


@dataclass(frozen=True)
class Point:
    """One size: its three arms, the prompt candidates tried, and prompt against LoRA on the same items."""

    size: int
    every: bool  # the size is every training row
    prompt: Arm
    lora: Arm
    both: Arm
    candidates: int
    p: float = 1.0  # paired, prompt against LoRA
    p_adjusted: float = 1.0  # for keeping the best of `tried`, then (Holm) for the sizes compared
    tried: int = 1  # the configurations the size's comparison was kept from: its candidates and earlier ones
    discordance: float = 0.0  # the share of items the two arms disagree on
    n_items: int = 0
    eval_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.size} (all)" if self.every else str(self.size)

    @property
    def delta(self) -> float:
        """The LoRA's lead over the prompt, in points."""
        return (self.lora.rate - self.prompt.rate) * 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "every": self.every,
            **{arm: getattr(self, arm).to_dict() for arm in ("prompt", "lora", "both")},
            "candidates": self.candidates,
            "tried": self.tried,
            "p": self.p,
            "p_adjusted": self.p_adjusted,
            "discordance": round(self.discordance, 4),
            "n_items": self.n_items,
            "eval_id": self.eval_id,
        }


def point(size: int, every: bool, prompt: Arm, lora: Arm, both: Arm, candidates: int, eval_id: str = "") -> Point:
    """A size's point, its prompt-against-LoRA p-value from the items both arms were graded on."""
    shared = [i for i in prompt.scores if i in lora.scores]
    a, b = [prompt.scores[i] for i in shared], [lora.scores[i] for i in shared]
    discordance = sum(abs(x - y) for x, y in zip(a, b)) / len(shared) if shared else 0.0
    p = paired_p(a, b) if shared else 1.0
    return Point(size, every, prompt, lora, both, candidates, p, 1.0, 1, discordance, len(shared), eval_id)


@dataclass(frozen=True)
class Curve:
    """The points, smallest size first, judged together."""

    points: list[Point]
    earlier: int  # prompt versions evaluated on these items before the curve (each size's best is kept from them too)
    picked: int  # the checkpoints each LoRA was picked from (1: its final adapter)
    crossover: int | None  # the index of the first size where the LoRA is ahead by a real difference
    real: tuple[int, ...]  # the indices of the sizes with a real difference, either way
    sentence: str
    dataset: str = ""
    split: str = ""
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [p.to_dict() for p in self.points],
            "earlier": self.earlier,
            "picked": self.picked,
            "crossover": self.crossover,
            "real": list(self.real),
            "sentence": self.sentence,
            "dataset": self.dataset,
            "split": self.split,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        """A stored curve (without its items' scores); a file of another shape is one line."""
        try:
            points = [
                Point(
                    int(p["size"]),
                    bool(p["every"]),
                    _arm(p["prompt"]),
                    _arm(p["lora"]),
                    _arm(p["both"]),
                    int(p["candidates"]),
                    float(p["p"]),
                    float(p["p_adjusted"]),
                    int(p["tried"]),
                    float(p["discordance"]),
                    int(p["n_items"]),
                    str(p["eval_id"]),
                )
                for p in data["points"]
            ]
            crossover = data["crossover"]
            return cls(
                points,
                int(data["earlier"]),
                int(data["picked"]),
                None if crossover is None else int(crossover),
                tuple(int(i) for i in data["real"]),
                str(data["sentence"]),
                str(data.get("dataset", "")),
                str(data.get("split", "")),
                str(data.get("created_at", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TunelabError(f"not a data-budget curve ({type(exc).__name__}: {exc})") from None


def _arm(data: dict[str, Any]) -> Arm:
    low, high = data["ci"]
    return Arm(str(data["label"]), float(data["rate"]), (float(low), float(high)))


def judge_curve(points: Sequence[Point], earlier: int = 0, picked: int = 1, **where: str) -> Curve:
    """The points judged together: each size's p-value adjusted for keeping the best of its candidates and the
    `earlier` versions (times the `picked` checkpoints), then Holm's over the sizes; the crossover, the sizes
    with a real difference, and the sentence."""
    if not points:
        raise TunelabError("a data-budget curve needs at least one size")
    ordered = [replace(p, tried=(p.candidates + earlier) * picked) for p in sorted(points, key=lambda p: p.size)]
    held = holm([adjusted(p.p, p.tried) for p in ordered])
    judged = [replace(p, p_adjusted=h) for p, h in zip(ordered, held)]
    real = tuple(i for i, p in enumerate(judged) if p.p_adjusted < ALPHA and p.delta != 0)
    crossover = next((i for i in real if judged[i].delta > 0), None)
    return Curve(judged, earlier, picked, crossover, real, sentence(judged, picked, crossover, real), **where)


def sentence(points: Sequence[Point], picked: int, crossover: int | None, real: Sequence[int]) -> str:
    """Where the LoRA overtakes prompting, and how sure that is; or that it never does on these rows."""

    def how(p: Point) -> str:
        checkpoints = f" and of {picked} LoRA checkpoints" if picked > 1 else ""
        return (
            f"{p_text(p.p_adjusted)}, adjusted for keeping the best of {p.tried // picked} prompt versions"
            f"{checkpoints} and for {len(points)} sizes compared"
        )

    if crossover is not None:
        at = points[crossover]
        where = (
            f"between {points[crossover - 1].name} and {at.name} labelled rows"
            if crossover
            else f"from the smallest budget tried, {at.name} labelled rows"
        )
        text = f"The LoRA overtakes prompting {where}; at {at.name} the difference is real: {_vs(at)} ({how(at)})."
    elif points[-1].delta > 0:  # ahead, but by no difference these items can tell from luck
        last = points[-1]
        planned, _ = power_discordance(last.discordance, last.n_items)
        smallest = detectable(last.n_items, round(planned, 3))
        text = (
            f"The LoRA never overtakes prompting by a real difference on these rows: at {last.name} labelled rows "
            f"it is ahead, {_vs(last)} ({how(last)}), not a real difference; these "
            f"{last.n_items} items find a difference of {smallest * 100:.0f} points or more {POWER:.0%} of the time."
        )
    else:
        last = points[-1]
        lead = "behind" if last.delta < 0 else "level"
        text = (
            f"The LoRA never overtakes prompting on these rows: at {last.name} labelled rows it is {lead}, "
            f"{_vs(last)} ({how(last)})."
        )
    behind = [points[i].name for i in real if points[i].delta < 0]
    if behind:
        text += f" Prompting is ahead by a real difference at {_listed(behind)} labelled rows."
    return text


def _vs(p: Point) -> str:
    return (
        f"{p.lora.rate * 100:.1f}% for the LoRA vs {p.prompt.rate * 100:.1f}% for the best prompt "
        f"({p.prompt.label}), {p.delta:+.1f} points"
    )


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
