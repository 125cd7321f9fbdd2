"""Command palette (ctrl+p): what the screen it opened on can do, grouped as `group: name`.

On the main screen: every workbench action by name, plus one entry per LoRA adapter. On any other screen:
that screen's keys by their description. Key hints come from the bindings and the user's keymap. Textual's
own provider stays beside this one (themes, quit, screenshots).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from core.workbench.adapters import ELSEWHERE
from tui.keymap import binding_owners, with_keys
from tui.screens.main import MainScreen

if TYPE_CHECKING:
    from tui.app import TunelabApp

Command = tuple[str, str, Callable[[], object]]  # name, help, what it does


def main_commands(screen: MainScreen) -> list[Command]:
    out: list[Command] = [
        ("prompt: Run the prompt", "generate from the prompt on screen (<run>)", screen.action_run),
        ("prompt: Cancel", "the generation or eval in progress (<cancel>)", screen.action_cancel),
        ("prompt: Show the rendered prompt", "exactly as the model sees it (<rendered>)", screen.action_rendered),
        ("prompt: Prompt versions", "and a diff between any two (<versions>)", screen.action_versions),
        ("prompt: Edit the prompt in $EDITOR", "then come back to it (<edit-prompt>)", screen.action_edit_prompt),
        ("prompt: Copy the output", "to the clipboard, over SSH too (OSC 52)", screen.action_copy_output),
        ("eval: Evaluate", "the prompt against no prompt on the eval dataset (<eval>)", screen.action_eval),
        ("eval: Verdict", "prompt, LoRA, or both? the grid of the newest eval (<verdict>)", screen.action_verdict),
        (
            "eval: Compare on the demo task",
            "prompt, LoRA, or both? trains two LoRAs on the demo and shows the verdict",
            screen.action_compare_demo,
        ),
        ("training: New training run", "LoRA on the workbench's dataset (<train>)", screen.action_train),
        ("training: Stop the training run", "stop and save the selected run", screen.training.action_stop),
        ("model: Switch model", "type a model: demo, a folder or a hub id", screen.action_focus_model),
        ("model: Use the base model", "no LoRA adapter", partial(screen.prompt.use_adapter, None)),
        (
            "model: Restart the model worker",
            "kill it (a worker that stopped answering is also killed by itself) and load the model afresh",
            screen.tunelab.restart_worker,
        ),
        (
            "model: Add a LoRA folder",
            "a PEFT adapter made elsewhere, offered in the lora list",
            screen.action_add_adapter_folder,
        ),
        ("history: Open history", "search, label, re-open and export (<history>)", screen.action_history),
        (
            "history: Export history",
            "the history screen's export of what matches",
            partial(screen.action_history, True),
        ),
        ("view: Zoom the focused pane", "maximize it, and back (<zoom>)", screen.action_zoom),
        ("view: Toggle layout", "side by side or stacked (<toggle-layout>)", screen.action_toggle_layout),
    ]
    for adapter in screen.prompt.adapters:
        what = "an adapter folder from elsewhere" if adapter.trained_on == ELSEWHERE else "a finished run's adapter"
        out.append((f"model: Use LoRA {adapter.label}", what, partial(screen.prompt.use_adapter, adapter.run_id)))
    return out


def screen_commands(screen: Screen) -> list[Command]:
    """Another screen's keys, by their description, in a group named for the screen."""
    group = type(screen).__name__.removesuffix("Screen").lower() or "screen"
    out: list[Command] = []
    for binding in getattr(screen, "BINDINGS", ()):
        if isinstance(binding, Binding) and binding.description and binding.id:
            out.append(
                (f"{group}: {binding.description}", f"(<{binding.id}>)", partial(screen.run_action, binding.action))
            )
    return out


class TunelabCommands(Provider):
    def _commands(self) -> list[Command]:
        app = cast("TunelabApp", self.app)
        screen = self.screen
        found = main_commands(screen) if isinstance(screen, MainScreen) else screen_commands(screen)
        return [*found, ("help: Help", "keys for the focused pane (<help>)", app.action_help)]

    def _keyed(self) -> list[Command]:
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
