"""Candidates: prompt versions a strategy proposes from a starting version.

- `shots`: k demonstrations for k in a range, drawn by each selection rule (random with a few seeds, similar);
- `instructions`: the instruction (system prompt) rewritten: by a proposer model, grounded in a summary of
  the training rows, or without one by built-in variants (so the strategy runs offline);
- `reflect`: a proposer reads failing items with the grader's reasons and rewrites the instruction (GEPA's
  idea); without a proposer it proposes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.data.datasets import Item
from core.data.prompts import PromptVersion
from core.data.shots import Shots
from core.errors import TunelabError

STRATEGIES = ("shots", "instructions", "reflect")
KS = (1, 2, 4, 8)
Proposer = Callable[[str], str]  # a model asked once: the request in, its answer out


@dataclass(frozen=True)
class Candidate:
    version: PromptVersion
    kind: str  # start | shots | instructions | reflect
    change: str  # what changed, in a few words ("4-shot similar", "system: Answer with one of ...")


def parse_strategies(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise TunelabError(f"{{0}} takes {', '.join(STRATEGIES)} (comma-separated), got '{text}'", "strategies")
    return names


def shot_candidates(start: PromptVersion, pool: int, seed: int) -> list[Candidate]:
    """k-shot versions of `start` for every k the training rows allow, random (two seeds) and similar."""
    out = []
    for k in (k for k in KS if k <= pool):
        for shots in (Shots(k, "random", seed), Shots(k, "random", seed + 1), Shots(k, "similar")):
            out.append(
                Candidate(
                    replace(start, shots=shots),
                    "shots",
                    shots.label + (f" seed {shots.seed}" if shots.select == "random" else ""),
                )
            )
    return out


def answers_summary(train: list[Item], limit: int = 12) -> str:
    """What the training rows answer: their labels when few, else a few examples of answers."""
    answers = Counter(it.expected for it in train if it.expected)
    if 0 < len(answers) <= limit:
        return "one of: " + ", ".join(a for a, _ in answers.most_common())
    return "short answers such as: " + "; ".join(a for a, _ in answers.most_common(3))


def instruction_candidates(
    start: PromptVersion, train: list[Item], proposer: Proposer | None, n: int = 4
) -> list[Candidate]:
    """Rewrites of the instruction (system prompt): a proposer's, or built-in variants grounded in the rows."""
    answers = answers_summary(train)
    if proposer is None:
        built_in = [
            f"Answer with {answers}.",
            f"Reply with the answer only: {answers}.",
            "Read the input carefully, then give only the final answer.",
            f"You label inputs. The answer is {answers}. Write nothing else.",
        ]
        texts = built_in[:n]
    else:
        request = (
            "Rewrite the instruction for a model that answers the input below it.\n"
            f"Current instruction: {start.system or '(none)'}\nPrompt template: {start.template}\n"
            f"The expected answers are {answers}.\nGive only the new instruction, in one or two sentences."
        )
        texts = [proposer(f"{request}\nVariant {i + 1} of {n}: make it different from the others.") for i in range(n)]
    return [_instruction(start, text, "instructions") for text in dict.fromkeys(t.strip() for t in texts) if text]


def reflect_candidates(
    start: PromptVersion, failures: list[str], proposer: Proposer | None, n: int = 2
) -> list[Candidate]:
    """A proposer reads the failing items (each with its input, the expected and the given answer, and the
    grader's reason) and rewrites the instruction; nothing without a proposer or failures."""
    if proposer is None or not failures:
        return []
    request = (
        f"A model with the instruction '{start.system or '(none)'}' and the prompt template '{start.template}' "
        "failed these items:\n" + "\n".join(failures[:8]) + "\nWrite a better instruction that fixes these "
        "failures without breaking other items. Give only the instruction."
    )
    texts = [proposer(f"{request}\nAttempt {i + 1}.") for i in range(n)]
    return [_instruction(start, text, "reflect") for text in dict.fromkeys(t.strip() for t in texts) if text]


def _instruction(start: PromptVersion, text: str, kind: str) -> Candidate:
    line = " ".join(text.split())[:400].replace("{{", "{").replace("}}", "}")  # a proposer writes no placeholder
    return Candidate(replace(start, system=line), kind, f"system: {line[:48]}")
