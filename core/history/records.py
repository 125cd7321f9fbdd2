"""The one shape of a generation history record, used by the TUI and the CLI alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.storage.schemas import EvalHeadline

RESULT_FIELDS = (
    "output",
    "rendered_prompt",
    "prompt_tokens",
    "completion_tokens",
    "stop_reason",
    "latency_s",
    "ttft_s",
    "tok_per_s",
)


def generation_record(
    *,
    model: str,
    prompt: str,
    system: str,
    mode: str,
    params: dict[str, Any],
    result: dict[str, Any] | None = None,
    status: str = "done",
    error: str | None = None,
    partial_output: str = "",
    rendered_prompt: str = "",
    adapter: str | None = None,
) -> dict[str, Any]:
    """status is done, cancelled or error; a cancelled or failed run keeps what was streamed."""
    record: dict[str, Any] = {
        "kind": "generation",
        "status": status,
        "model": model,
        "adapter": adapter,
        "mode": mode,
        "system": system,
        "prompt": prompt,
        "params": params,
        "error": error,
    }
    record.update({k: None for k in RESULT_FIELDS})
    record["output"], record["rendered_prompt"] = partial_output, rendered_prompt or None
    if result:
        record.update({k: result.get(k) for k in RESULT_FIELDS})
    return record


def eval_record(summary: EvalHeadline) -> dict[str, Any]:
    """An eval run's history entry: its variants' pass rates as the output; `ref` opens the full run."""
    variants = summary.variants
    lines = [f"{v.label}: {v.pass_rate:.1%} ({v.passed}/{v.trials})" for v in variants]
    first_prompt = next((v for v in variants if v.prompt_id), None)
    return {
        "kind": "eval",
        "status": summary.status,
        "ref": summary.id,
        "model": ", ".join(sorted({v.model for v in variants})),
        "adapter": ", ".join(sorted({v.adapter for v in variants if v.adapter})) or None,
        "prompt_name": first_prompt.prompt_name if first_prompt else None,
        "prompt_id": first_prompt.prompt_id if first_prompt else None,
        "prompt": f"eval {summary.scope} with {summary.grader}, {summary.n_items} items x{summary.repeat}",
        "output": "\n".join(lines),
        "system": "",
    }


def train_record(run_id: str, config: dict[str, Any], sweep: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training run's history entry; its live state stays in the run folder (`tunelab runs show`). A sweep's
    runs share the tag `sweep-ID` (`tunelab history --tag sweep-ID` lists them together)."""
    return {
        **({"tags": [f"sweep-{sweep['id']}"]} if sweep else {}),
        "kind": "train",
        "status": "started",
        "ref": run_id,
        "model": config["model"],
        "adapter": run_id,
        "prompt": config.get("template") or f"{config['dataset']}:{config['split']} as is",
        "system": config.get("system", ""),
        "mode": config.get("mode"),
        "output": f"LoRA r={config['lora_r']} on {config['target_modules']}, "
        f"{str(config['max_steps']) + ' steps' if config.get('max_steps') else str(config['epochs']) + ' epochs'}, "
        f"lr {config['learning_rate']}, batch {config['batch_size']}",
        "params": config,
    }
