"""A checkpoint's pass rate: the first `eval_items` eval rows generated greedily by the LoRA as it trains
and graded as an eval grades them (a row's own checks, else `eval_grader`; any accepted answer), so a
checkpoint is picked by what the verdict measures rather than by eval loss alone."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.data.datasets import Item
from core.data.graders import final_answer, grade_all, parse_grader
from core.engine.loading import LoadedModel
from core.engine.params import MAX_NEW_TOKENS_LIMIT, GenParams
from core.training.config import TrainConfig
from core.training.data import prompt_version, training_prompt

ANSWER_SLACK = 8  # tokens past the longest expected answer: room for an end-of-turn and a little noise
MAX_ANSWER_TOKENS = 512  # a long-form answer is scored on its start: a check stays bounded in time


class Scorer:
    """Scores the model it is given on the same rows every time (the run's own prompts and answers)."""

    def __init__(self, loaded: LoadedModel, config: TrainConfig, items: list[Item]) -> None:
        self.loaded, self.items = loaded, items[: config.eval_items]
        version = prompt_version(config)
        self.prompts = [training_prompt(config, version, item) for item in self.items]
        self.answers = [tuple(None if a is None else final_answer(a) for a in it.accepted) for it in self.items]
        labels = sorted({a for accepted in self.answers for a in accepted if a is not None})
        specs = {spec for it in self.items for spec in it.checks or (config.eval_grader,)}
        self.graders = {spec: parse_grader(spec, labels) for spec in specs}
        self.specs = [it.checks or (config.eval_grader,) for it in self.items]
        tok = loaded.tokenizer
        longest = max(
            (len(tok(a, add_special_tokens=False)["input_ids"]) for accepted in self.answers for a in accepted if a),
            default=0,
        )
        budget = min(MAX_NEW_TOKENS_LIMIT, MAX_ANSWER_TOKENS, longest + ANSWER_SLACK)
        self.params = GenParams(max_new_tokens=budget, temperature=0.0, seed=None)
        self.batch_size = config.batch_size

    def pass_rate(self, model: Any) -> float | None:
        """The share of rows whose greedy output passes; the model's RNG and train mode are left as found."""
        import torch

        from core.engine.generation import generate_batch

        if not self.items:
            return None
        outputs: dict[int, str] = {}
        was_training = model.training
        model.eval()
        devices = [torch.cuda.current_device()] if self.loaded.device.startswith("cuda") else []
        try:
            with torch.random.fork_rng(devices=devices):
                generate_batch(
                    dataclasses.replace(self.loaded, model=model),
                    self.prompts,
                    self.params,
                    on_result=lambda i, result: outputs.__setitem__(i, str(result.get("output") or "")),
                    batch_size=self.batch_size,
                )
        finally:
            model.train(was_training)
        passed = sum(
            grade_all(self.graders, self.specs[i], final_answer(outputs.get(i, "")), self.answers[i]).passed
            for i in range(len(self.items))
        )
        return passed / len(self.items)
