"""Grading an eval's finished calls: each row graded and appended to results.jsonl as it lands, and rows a
local judge grades held until the generations are done (the judge runs on the same engine)."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from core.data.graders import final_answer, grade_all
from core.errors import TunelabError
from core.evals.judge import is_judge
from core.evals.plan import Call, Plan
from core.storage.schemas import GradedRow


class Grading:
    """Grades each finished call and appends its row to results.jsonl at once (a killed process leaves what
    it graded); engines call `finish` from their own threads."""

    def __init__(
        self,
        plan: Plan,
        on_row: Callable[[GradedRow], object] | None,
        on_progress: Callable[[int, int], object] | None,
    ) -> None:
        self.plan, self.on_row, self.on_progress = plan, on_row, on_progress
        self.rows: list[GradedRow] = []
        self.fresh: dict[str, dict[str, Any]] = {}  # computed now (not from the cache): cached at the end
        self.skipped: Counter[int] = Counter()
        self.unrenderable: Counter[int] = Counter()  # of the skipped: rows the model's template cannot render
        self.notes: defaultdict[int, set[str]] = defaultdict(set)  # per variant: e.g. the system prompt folded
        self.lock = threading.Lock()
        self.out: Any = None
        self.waiting: list[tuple[Call, dict[str, Any], bool]] = []  # generated, for a local judge to grade

    def finish(self, call: Call, result: dict[str, Any], from_cache: bool) -> None:
        """Grade one call's result (or count it skipped); a row a local judge grades waits for `judge_rest`."""
        if result.get("stop_reason") == "cancelled":
            return  # an output cut short by a cancel is neither graded nor cached
        plan = self.plan
        item = plan.items[call.item]
        if result.get("stop_reason") == "unrenderable" and not plan.request.skip_unrenderable:
            raise TunelabError(f"{item.where}: {result.get('error')} ({{0}} evaluates the rest)", "skip_unrenderable")
        if result.get("stop_reason") in ("skipped", "unrenderable"):
            with self.lock:  # too long for the context, or a template that cannot render it: counted, not graded
                self.skipped[call.variant] += 1
                if result.get("stop_reason") == "unrenderable":
                    self.unrenderable[call.variant] += 1
            return
        if plan.judge is not None and plan.judge.local and any(is_judge(s) for s in self._specs(call)):
            with self.lock:
                self.waiting.append((call, result, from_cache))
                if not from_cache and not result.get("sampled"):
                    self.fresh[call.key] = result
            return
        self._grade(call, result, from_cache)

    def _specs(self, call: Call) -> tuple[str, ...]:
        checks = self.plan.items[call.item].checks
        return (self.plan.request.grader,) if checks is None else checks

    def judge_rest(self, cancel: threading.Event) -> None:
        """A local judge runs on the eval's own engine: once the generations are done, it answers every
        waiting row's questions in one batch, and those rows are graded like the rest."""
        judge, answers = self.plan.judge, self.plan.answers
        if judge is None or not self.waiting:
            return
        questions = [
            judge.question(spec, call.prompt, expected, final_answer(result["output"]))
            for call, result, _ in self.waiting
            for spec in self._specs(call)
            if is_judge(spec)
            for expected in answers[self.plan.items[call.item].id]
        ]
        judge.answer_all(questions, cancel)
        for call, result, from_cache in self.waiting:
            if cancel.is_set():
                return  # a row whose judging was cut short is not graded
            self._grade(call, result, from_cache)

    def _grade(self, call: Call, result: dict[str, Any], from_cache: bool) -> None:
        plan = self.plan
        item = plan.items[call.item]
        specs = self._specs(call)
        graders, judged = plan.graders, dict[str, Any]()
        if plan.judge is not None:  # a judge spec grades this row with its input in the judge's prompt
            graders = {**graders, **{s: plan.judge.grader(s, call.prompt, judged) for s in specs if is_judge(s)}}
        grade = grade_all(graders, specs, final_answer(result["output"]), plan.answers[item.id])
        graded = GradedRow(
            variant=call.variant,
            item=item.id,
            repeat=call.repeat,
            output=result["output"],
            expected=item.expected_text,
            passed=grade.passed,
            score=grade.score,
            latency_s=result.get("latency_s"),
            prompt_tokens=result.get("prompt_tokens"),
            completion_tokens=result.get("completion_tokens"),
            truncated=bool(result.get("truncated")),
            cached=from_cache,
            **judged,  # the judge's answer, and why it could not be read
        )
        with self.lock:
            if result.get("note"):
                self.notes[call.variant].add(str(result["note"]))
            self.rows.append(graded)
            self.out.write(json.dumps(graded.to_dict(), ensure_ascii=False) + "\n")
            self.out.flush()
            if not from_cache and not result.get("sampled"):
                self.fresh[call.key] = result
            done = len(self.rows)
        if self.on_row:
            self.on_row(graded)
        if self.on_progress:
            self.on_progress(done, len(plan.calls))
