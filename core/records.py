"""The one shape of a generation history record, used by the TUI and the CLI alike."""

from __future__ import annotations

from typing import Any

RESULT_FIELDS = ("output", "rendered_prompt", "prompt_tokens", "completion_tokens", "stop_reason",
                 "latency_s", "ttft_s", "tok_per_s")


def generation_record(*, model: str, prompt: str, system: str, mode: str, params: dict[str, Any],
                      result: dict[str, Any] | None = None, status: str = "done",
                      error: str | None = None, partial_output: str = "",
                      rendered_prompt: str = "", adapter: str | None = None) -> dict[str, Any]:
    """status is done, cancelled or error; a cancelled or failed run keeps what was streamed."""
    record: dict[str, Any] = {"kind": "generation", "status": status, "model": model, "adapter": adapter,
                              "mode": mode, "system": system, "prompt": prompt, "params": params,
                              "error": error}
    record.update({k: None for k in RESULT_FIELDS})
    record["output"], record["rendered_prompt"] = partial_output, rendered_prompt or None
    if result:
        record.update({k: result.get(k) for k in RESULT_FIELDS})
    return record
