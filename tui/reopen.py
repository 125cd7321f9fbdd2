"""What a history record puts back in the prompt editor: its prompt version for an eval, the template a
training run used, the run itself for a generation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.data.prompts import PromptStore


def only_adapter(adapters: object) -> str | None:
    """The one adapter of an eval's history record ("a, b" when it compared several: then none)."""
    names = [a.strip() for a in str(adapters or "").split(",") if a.strip()]
    return names[0] if len(names) == 1 else None


def editor_record(record: dict[str, Any], prompts: PromptStore) -> tuple[dict[str, Any] | None, str]:
    """The fields for the editor, or None and what to say instead (a prompt store error is raised)."""
    kind = record.get("kind", "generation")
    if kind == "train" and record.get("ref"):
        params = record.get("params")
        config: dict[str, Any] = params if isinstance(params, dict) else {}
        if not config.get("template"):
            return None, f"Training run {str(record.get('ref'))[:10]} is shown in the Training pane."
        return {**record, "template": config["template"], "prompt_name": None, "params": {}}, ""
    if kind == "eval" and record.get("prompt_id"):
        _, version = prompts.get(record["prompt_id"])
        return {
            **record,
            "template": version.template,
            "system": version.system,
            "mode": version.mode,
            "params": version.params,
            "shots": version.to_dict().get("shots"),  # a k-shot version comes back with its demonstrations
            "adapter": only_adapter(record.get("adapter")),  # the eval's LoRA when it had one (the 2x2)
        }, ""
    if kind == "eval":
        return None, "That eval ran the items without a prompt: nothing to open."
    return record, ""
