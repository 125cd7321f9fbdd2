"""State written straight to a data dir, as earlier sessions leave it: finished runs with adapters, and a
complete 2x2 eval (no prompt / a prompt x the base / a LoRA trained as is) with pinned ids for pictures."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from core.data.prompts import PromptStore, PromptVersion
from core.evals.plan import EvalRequest, Variant
from core.evals.stored import store
from core.evals.summary import summarize
from core.storage.schemas import GradedRow
from core.training.config import TrainConfig
from core.training.runs import Runs, StatusWriter

SENTI = PromptVersion("{{text}} Overall, this review is", mode="raw")
N_ITEMS = 20


def eval_summary(variants: list[dict], items: dict[str, dict], status: str = "done", split: str | None = None):
    """A summary of the given variants and item scores, as the verdict and the grid read one."""
    from core.storage.schemas import EvalSummary

    return EvalSummary.model_validate(
        {"id": "e1", "created_at": "2026-11-25T12:00:00", "dataset": "d", "status": status, "split": split,
         "variants": variants, "items": items}
    )  # fmt: skip


def finished_run(
    home: Path, steps: int = 12, fixed_id: str | None = None, config: TrainConfig | None = None, adapter: bool = False
) -> str:
    """A finished run's folder written directly (no training): metrics, status and, when asked, a small adapter
    with the run's cost (as the training loop records it)."""
    runs = Runs(home)
    run_id = runs.create(config or TrainConfig(max_steps=steps))
    if fixed_id:
        runs.path(run_id).rename(runs.folder / fixed_id)
        run_id = fixed_id
    finish(runs.path(run_id), steps, adapter)
    return run_id


def finish(run_dir: Path, steps: int, adapter: bool) -> None:
    """What a run's process leaves when it ends done, written at once."""
    with open(run_dir / "metrics.jsonl", "w") as fh:
        for step in range(1, steps + 1):
            row = {
                "step": step, "epoch": step / steps, "loss": 3.0 / step, "lr": 1e-3, "grad_norm": 0.5,
                "tokens": 100, "tokens_seen": 100 * step, "tok_s": 4000.0, "elapsed_s": step / 10,
                "eta_s": (steps - step) / 10, "mem_mb": 500.0,
            }  # fmt: skip
            if step % 6 == 0:
                row["eval_loss"] = 3.2 / step
            fh.write(json.dumps(row) + "\n")
    extra = {}
    if adapter:
        folder = run_dir / "adapter"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "demo", "r": 8}))
        empty_safetensors(folder / "adapter_model.safetensors", 300_000)
        extra = {"adapter": "adapter", "train_s": 42.0, "device": "cpu", "trainable_params": 98_304}
    StatusWriter(run_dir).update(state="done", step=steps, total_steps=steps, eval_loss=0.27, **extra)


def empty_safetensors(path: Path, size: int = 64) -> None:
    """A valid safetensors file of `size` bytes holding no tensor (its header padded with spaces, as the
    format allows): weights that load as a file, for adapters whose numbers no test reads."""
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(struct.pack("<Q", size - 8) + header.ljust(size - 8))


def comparison_eval(home: Path, run_id: str, eval_id: str = "e0000snapshot") -> dict:
    """A stored, complete 2x2 eval: no prompt 10%, the prompt 60%, the LoRA alone 90%, the LoRA with the
    prompt 20% (it was trained as is). Ids and times pinned so pictures never change."""
    PromptStore(home).save("senti", SENTI)
    variants = [
        Variant("no prompt", None, "demo"), Variant("senti", SENTI, "demo"),
        Variant("no prompt", None, "demo", run_id), Variant("senti", SENTI, "demo", run_id),
    ]  # fmt: skip
    passing = [2, 12, 18, 4]  # items 0..k-1 pass
    rows = [
        GradedRow(
            variant=vi, item=f"i{i:02d}", repeat=0, output=" positive" if i < k else " meh",
            expected="positive", passed=i < k, score=float(i < k), latency_s=0.01 + 0.002 * vi,
            prompt_tokens=20 + 6 * (vi % 2), completion_tokens=2, truncated=False, cached=False,
        )
        for vi, k in enumerate(passing)
        for i in range(N_ITEMS)
    ]  # fmt: skip
    request = EvalRequest("demo", "eval", "labels")
    summary = summarize(eval_id, request, "demo", "sha", variants, [None] * N_ITEMS, rows, "done")
    summary.created_at = "2026-11-25T12:00:00"
    folder = home / "evals" / eval_id
    folder.mkdir(parents=True)
    store(home, folder, summary)
    return summary
