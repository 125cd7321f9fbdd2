"""Judge graders: `judge:RUBRIC` (inline text, or a file) asks a judge model, any served endpoint, whether
an output meets the rubric, for open-ended tasks no string check can grade (promptfoo's `llm-rubric`).

The judge sees the rubric, the input, the expected answer when there is one, and the output, and must
answer on its first line `PASS`, `FAIL` or `SCORE: x` (0 to 1, a pass at the threshold or above), then
its reasoning. Any other answer is a judge error: counted in the summary and graded a fail, never a pass.
Judge calls are greedy and cached by the judge's URL, model and prompt, like generations."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.graders import Grade, Grader
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.served import endpoint, is_served
from core.errors import TunelabError
from core.evals.cache import GenerationCache, cache_key

PREFIX = "judge:"
THRESHOLD = 0.5
MAX_RUBRIC_BYTES = 64 * 1024
VERDICT = re.compile(
    r"^\W*(?:verdict\s*:\s*)?(?:(?P<word>pass|fail)\b|score\s*[:=]\s*(?P<score>[0-9]*\.?[0-9]+))", re.I
)
SYSTEM = (
    "You are a strict grader. Judge whether the OUTPUT meets the RUBRIC for the given INPUT"
    " (and matches the EXPECTED answer where one is given). Answer on the first line with exactly PASS or FAIL"
    " (or SCORE: a number from 0 to 1), then one short line of reasons."
)
PARAMS = GenParams(max_new_tokens=256, temperature=0.0, seed=0)


def is_judge(spec: str) -> bool:
    return spec.strip().lower().startswith(PREFIX)


def rubric_text(spec: str) -> str:
    """The rubric a spec names: a readable file's text (bounded), else the text after `judge:` itself."""
    arg = spec.strip()[len(PREFIX) :].strip()
    if not arg:
        raise TunelabError("grader 'judge' needs a rubric: judge:RUBRIC (inline text or a file)")
    path = Path(arg).expanduser()
    if len(arg) < 4096 and "\n" not in arg and path.is_file():
        data = path.read_bytes()[: MAX_RUBRIC_BYTES + 1]
        if len(data) > MAX_RUBRIC_BYTES:
            raise TunelabError(f"rubric {path}: over {MAX_RUBRIC_BYTES // 1024} KiB")
        return data.decode("utf-8", errors="replace").strip()
    return arg


def parse_verdict(text: str) -> tuple[bool, float] | None:
    """PASS, FAIL or SCORE on the first non-empty line (as the judge prompt asks); None when it is not there."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    match = VERDICT.match(first)
    if match is None:
        return None
    if match["word"]:
        passed = match["word"].lower() == "pass"
        return passed, 1.0 if passed else 0.0
    score = float(match["score"])
    return (score >= THRESHOLD, score) if 0.0 <= score <= 1.0 else None


def judge_prompt(rubric: str, prompt: Prompt, expected: str | None, output: str) -> Prompt:
    said = prompt.text or "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt.messages)
    parts = [f"RUBRIC:\n{rubric}", f"INPUT:\n{said}"]
    if expected is not None:
        parts.append(f"EXPECTED:\n{expected}")
    parts.append(f"OUTPUT:\n{output}")
    return Prompt("\n\n".join(parts), SYSTEM, "chat")


@dataclass
class JudgeTally:
    """What the judge cost, apart from the graded model's own calls; `errors` are unparsable answers."""

    model: str
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0


class Judge:
    """Grades rows against rubrics through one served judge model; safe to call from backend threads."""

    def __init__(self, model: str, root: Path, use_cache: bool = True) -> None:
        if not is_served(model):
            raise TunelabError(
                f"the judge must be a served model (URL#MODEL or endpoint:NAME), got '{model}': "
                "`transformers serve MODEL` serves a local one"
            )
        from core.engine.served import ServedClient

        self.point = endpoint(model)
        self.client = ServedClient(self.point)
        self.cache = GenerationCache(root) if use_cache else None
        self.tally = JudgeTally(model)
        self.fresh: dict[str, dict[str, Any]] = {}  # answered now: cached once, when the eval ends
        self.lock = threading.Lock()

    def grader(self, spec: str, prompt: Prompt, notes: dict[str, Any]) -> Grader:
        """The spec as a grader of one row (its input is part of the judge's prompt); the judge's answer
        and any error land in `notes`, which the row keeps."""
        rubric = rubric_text(spec)

        def check(output: str, expected: str | None) -> Grade:
            answer = self._ask(judge_prompt(rubric, prompt, expected, output))
            verdict = parse_verdict(answer)
            notes["judge"] = answer[:2000]
            if verdict is None:
                with self.lock:
                    self.tally.errors += 1
                notes["judge_error"] = "the judge's answer has no PASS, FAIL or SCORE on its first line"
                return Grade(False, 0.0)
            return Grade(*verdict)

        return Grader(spec, check)

    def _ask(self, prompt: Prompt) -> str:
        key = cache_key(self.point.fingerprint, None, prompt.to_dict(), PARAMS.to_dict(), "served")
        with self.lock:
            hit = self.fresh.get(key)
        if hit is None and self.cache is not None:
            hit = self.cache.get_many([key]).get(key)
        result = hit or self.client.complete(prompt, PARAMS)
        with self.lock:
            self.tally.calls += 1
            if hit:
                self.tally.cached += 1
            else:
                self.tally.prompt_tokens += int(result.get("prompt_tokens") or 0)
                self.tally.completion_tokens += int(result.get("completion_tokens") or 0)
                self.fresh[key] = result
        return str(result.get("output") or "")

    def finish(self) -> None:
        """The eval is over: what the judge answered is cached in one write, and its connection closed."""
        if self.cache is not None and self.fresh:
            self.cache.put_many(self.fresh)
        self.client.close()


def judge_line(tally: dict[str, Any]) -> str:
    """A summary's judge cost in one line, apart from the graded calls."""
    tokens = f"{tally.get('prompt_tokens', 0)}+{tally.get('completion_tokens', 0)} tokens"
    calls = f"{tally.get('calls', 0)} calls ({tally.get('cached', 0)} cached)"
    return (
        f"judge {tally.get('model')}: {calls}, {tokens}, {tally.get('errors', 0)} unparsable answer(s) graded as fails"
    )
