"""A run's measurements on its eval rows at eval steps: the eval loss and, with a scorer, each checkpoint's pass
rate (the scored steps its best checkpoint is picked from), and early stopping on one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.storage import runfolders
from core.training.config import TrainConfig
from core.training.early_stopping import EarlyStop
from core.training.runs import metric_row


class Evaluation:
    """What the run measures on its eval rows as it trains. Every rank holds one; rank 0 measures."""

    def __init__(self, cfg: TrainConfig, data: list, scorer: Any, pad_id: int, device: str) -> None:
        self.cfg, self.data, self.scorer, self.pad_id, self.device = cfg, data, scorer, pad_id, device
        self.scored: list[dict[str, Any]] = []  # the steps whose pass rate was measured (train with eval_items)
        self.early = EarlyStop(cfg) if cfg.early_stop is not None else None

    def due(self, step: int) -> bool:
        return self.cfg.eval_every is not None and step % self.cfg.eval_every == 0

    def loss(self, model: Any) -> float | None:
        import torch

        from core.training.data import collate

        if not self.data:
            return None
        size = self.cfg.batch_size
        model.eval()
        total_loss, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self.data), size):
                batch = list(range(start, min(start + size, len(self.data))))
                ids, labels, mask = collate(self.data, batch, self.pad_id)
                out = model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), labels=labels.to(self.device)
                )
                total_loss += out.loss.item() * len(batch)
                count += len(batch)
        model.train()
        return total_loss / count

    def at(self, model: Any, step: int, total: int) -> dict[str, Any]:
        """At an eval step, the eval loss; with a scorer, the pass rate too, at eval steps and the last."""
        eval_step = self.due(step)
        scoring = self.scorer is not None and (eval_step or step == total)
        if not (eval_step or scoring):
            return {}
        out: dict[str, Any] = {"eval_loss": round(self.loss(model) or 0.0, 5) if self.data else None}
        if self.scorer is not None and scoring:
            rate = self.scorer.pass_rate(model)
            out["pass_rate"] = None if rate is None else round(rate, 6)
            if rate is not None:
                self.scored.append({"step": step, "pass_rate": rate, "eval_loss": out["eval_loss"]})
        return out

    def keeps(self, row: dict[str, Any]) -> bool:
        """Whether this step's checkpoint is kept: a scored step, or early stopping's best so far."""
        return "pass_rate" in row or (self.early is not None and self.early.best_step == row["step"])

    def superseded(self) -> list[int]:
        """The step of early stopping's previous best, once bettered, when nothing else keeps its checkpoint (a
        `save_every` step or a scored one): taken once, so the checkpoints kept stay few on a long run."""
        step = self.early.replaced if self.early is not None else None
        if self.early is not None:
            self.early.replaced = None
        every, scored = self.cfg.save_every, {entry["step"] for entry in self.scored}
        if step is None or step in scored or (every and step % every == 0):
            return []
        return [step]

    def plateaued(self, row: dict[str, Any], dist: Any) -> bool:
        """Whether the run stops early at this row's step: rank 0 judges its metric, and every rank learns it at
        the same eval step."""
        if self.early is None or not self.due(row["step"]):
            return False
        return dist.any(dist.main and self.early.see(row))[0]

    def best(self, at: int | None = None) -> dict[str, Any]:
        """The status fields of the scored checkpoints: the pass rate of the latest (or of step `at`, whose
        weights the adapter holds, when scored) and the best step so far."""
        best = runfolders.best_of(self.scored)
        if best is None:
            return {}
        current = next((entry for entry in self.scored if entry["step"] == at), self.scored[-1])
        return {
            "pass_rate": current["pass_rate"],
            "best_checkpoint": runfolders.checkpoint_name(best["step"]),
            "best_pass_rate": best["pass_rate"],
            "scored_checkpoints": len(self.scored),
        }

    def restore(self, run_dir: Path) -> None:
        """A resumed run's scores and early-stopping count, from its metrics (already trimmed to its checkpoint)."""
        self.scored = runfolders.scores(run_dir)
        if self.early is None:
            return
        try:
            lines = (run_dir / runfolders.METRICS_FILE).read_bytes().splitlines()
        except OSError:
            return
        for row in filter(None, map(metric_row, lines)):
            if self.due(row["step"]):
                self.early.see(row)
