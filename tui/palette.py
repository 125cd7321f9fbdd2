"""Command palette (ctrl+p): every workbench action by name, plus one entry per LoRA adapter.

Textual's own provider stays beside this one (themes, quit, screenshots).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.workbench.service import ELSEWHERE
from tui.keymap import binding_owners, with_keys

if TYPE_CHECKING:
    from tui.app import TunelabApp


class TunelabCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = cast("TunelabApp", self.app)
        out: list[tuple[str, str, Callable[[], object]]] = [
            ("Run the prompt", "generate from the prompt on screen (<run>)", app.action_run),
            ("Evaluate", "the prompt against no prompt on the eval dataset (<eval>)", app.action_eval),
            ("Verdict", "prompt, LoRA, or both? the grid of the newest eval (<verdict>)", app.action_verdict),
            (
                "Compare on the demo task",
                "prompt, LoRA, or both? trains two LoRAs on the demo and shows the verdict",
                app.action_compare_demo,
            ),
            ("New training run", "LoRA on the workbench's dataset (<train>)", app.action_train),
            ("Stop the training run", "stop and save the selected run", app.action_stop_training),
            ("Cancel", "the generation or eval in progress (<cancel>)", app.action_cancel),
            ("Open history", "search, label, re-open and export (<history>)", app.action_history),
            ("Export history", "the history screen's export of what matches", app.action_export_history),
            ("Switch model", "type a model: demo, a folder or a hub id", app.action_focus_model),
            ("Use the base model", "no LoRA adapter", partial(app.use_adapter, None)),
            (
                "Add a LoRA folder",
                "a PEFT adapter made elsewhere, offered in the lora list",
                app.action_add_adapter_folder,
            ),
            ("Edit the prompt in $EDITOR", "then come back to it (<edit-prompt>)", app.action_edit_prompt),
            ("Copy the output", "to the clipboard, over SSH too (OSC 52)", app.action_copy_output),
            ("Show the rendered prompt", "exactly as the model sees it (<rendered>)", app.action_rendered),
            ("Prompt versions", "and a diff between any two (<versions>)", app.action_versions),
            ("Zoom the focused pane", "maximize it, and back (<zoom>)", app.action_zoom),
            ("Toggle layout", "side by side or stacked (<toggle-layout>)", app.action_toggle_layout),
            ("Help", "keys for the focused pane (<help>)", app.action_help),
        ]
        for adapter in app.adapters:
            what = "an adapter folder from elsewhere" if adapter.trained_on == ELSEWHERE else "a finished run's adapter"
            out.append((f"Use LoRA {adapter.label}", what, partial(app.use_adapter, adapter.run_id)))
        return out

    def _keyed(self) -> list[tuple[str, str, Callable[[], object]]]:
        """The commands with each help's key as the user's keymap has it now."""
        owners = binding_owners()
        return [
            (name, with_keys(self.app, help_text, owners), callback) for name, help_text, callback in self._commands()
        ]

    async def discover(self) -> Hits:
        for name, help_text, callback in self._keyed():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._keyed():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
