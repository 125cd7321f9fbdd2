"""Judge graders: `judge:RUBRIC` (inline text, or a file) asks a judge model, served or local, whether an
output meets the rubric, for open-ended tasks no string check can grade (promptfoo's `llm-rubric`).

The judge sees the rubric, the input, the expected answer when there is one, and the output, and must
answer on its first line `PASS`, `FAIL` or `SCORE: x` (0 to 1, a pass at the threshold or above), then
its reasoning. Any other answer is a judge error: counted in the summary and graded a fail, never a pass.
Judge calls are greedy and cached by the judge's URL and model (a local one's weights) and prompt, like
generations. A judge on a concurrent engine (a server) is asked as each row is graded; a local one runs on the
eval's own engine, so its questions wait until the eval's generations are done and are answered in one batch
(`answer_all`)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from core.data.graders import Grade, Grader, spec_name
from core.data.graders.judge import JUDGE
from core.engine.engines import Engine
from core.engine.params import GenParams
from core.engine.prompt import Prompt
from core.engine.protocol import GenResult
from core.errors import TunelabError
from core.evals.cache import GenerationCache, cache_key
from core.storage.schemas import JudgeCost

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
PARAMS = GenParams(max_new_tokens=256, temperature=0.0, seed=0, truncate="skip")  # a cut prompt: a judge error


def is_judge(spec: str) -> bool:
    """A spec naming the judge (declared in the grader registry, core/data/graders/judge.py), with or
    without its rubric: one without is refused by `rubric_text`."""
    return spec_name(spec) == JUDGE.name


def rubric_text(spec: str) -> str:
    """The rubric a spec names: a readable file's text (bounded), else the text after `judge:` itself."""
    arg = spec.partition(":")[2].strip()
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


class Judge:
    """Grades rows against rubrics through one judge model; safe to call from backend threads."""

    def __init__(self, model: str, shown_as: str, engine: Engine, root: Path, use_cache: bool = True) -> None:
        self.model, self.engine, self.local = model, engine, not engine.concurrent
        self.fingerprint, self.numerics = engine.fingerprint(model), engine.numerics  # its cache keys: weights or URL
        self.cache = GenerationCache(root) if use_cache else None
        self.tally = JudgeCost(model=shown_as)  # the summary's `judge`: counted here, under the lock
        self.fresh: dict[str, dict[str, Any]] = {}  # answered now: cached once, when the eval ends
        self.lock = threading.Lock()
        self.rubrics: dict[str, str] = {}

    def question(self, spec: str, prompt: Prompt, expected: str | None, output: str) -> Prompt:
        if spec not in self.rubrics:  # a rubric file is read once per eval
            self.rubrics[spec] = rubric_text(spec)
        return judge_prompt(self.rubrics[spec], prompt, expected, output)

    def grader(self, spec: str, prompt: Prompt, notes: dict[str, Any]) -> Grader:
        """The spec as a grader of one row (its input is part of the judge's prompt); the judge's answer
        and any error land in `notes`, which the row keeps."""

        def check(output: str, expected: str | None) -> Grade:
            answer = self._ask(self.question(spec, prompt, expected, output))
            verdict = parse_verdict(answer)
            notes["judge"] = answer[:2000]
            if verdict is None:
                with self.lock:
                    self.tally.errors += 1
                notes["judge_error"] = "the judge's answer has no PASS, FAIL or SCORE on its first line"
                return Grade(False, 0.0)
            return Grade(*verdict)

        return Grader(spec, check)

    def _key(self, prompt: Prompt) -> str:
        return cache_key(self.fingerprint, None, prompt.to_dict(), PARAMS.to_dict(), self.numerics)

    def _known(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        with self.lock:
            known = {k: self.fresh[k] for k in keys if k in self.fresh}
        missing = [k for k in keys if k not in known]
        if missing and self.cache is not None:
            known.update(self.cache.get_many(missing))
        return known

    def _count(self, result: dict[str, Any], key: str | None) -> None:
        """One answer's cost in the tally; `key` given: answered now, kept to be cached."""
        with self.lock:
            self.tally.calls += 1
            if key is None:
                self.tally.cached += 1
                return
            self.tally.prompt_tokens += int(result.get("prompt_tokens") or 0)
            self.tally.completion_tokens += int(result.get("completion_tokens") or 0)
            if result.get("stop_reason") not in ("cancelled", "skipped", "unrenderable"):
                self.fresh[key] = result

    def _ask(self, prompt: Prompt) -> str:
        key = self._key(prompt)
        hit = self._known([key]).get(key)
        if self.local:  # answered in `answer_all`; a question it did not reach is an unparsable answer
            return str((hit or {}).get("output") or "")
        if hit is None:
            hit = self.engine.generate(self.model, None, prompt, PARAMS, None, threading.Event()).to_dict()
            self._count(hit, key)
        else:
            self._count(hit, None)
        return str(hit.get("output") or "")

    def answer_all(self, questions: list[Prompt], cancel: threading.Event) -> None:
        """A local judge's questions, in one batch on its engine (greedy); known answers are reused."""
        unique = {self._key(q): q for q in questions}
        known = self._known(list(unique))
        for key in known:
            self._count(known[key], None)
        ask = [(k, q) for k, q in unique.items() if k not in known]
        if not ask or cancel.is_set():
            return

        def on_result(i: int, result: GenResult) -> None:
            self._count(result.to_dict(), ask[i][0])

        self.engine.batch(self.model, None, [q for _, q in ask], PARAMS, on_result, cancel)

    def finish(self) -> None:
        """The eval is over: what the judge answered is cached in one write, and its connection closed."""
        if self.cache is not None and self.fresh:
            self.cache.put_many(self.fresh)
