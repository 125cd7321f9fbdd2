"""Command palette (ctrl+p): what the screen it opened on can do, grouped as `group: name`.

Every entry is read off the app, that screen and the nodes on it (`tui.commands`): the screen's keys, the
app's and the panes' keys that name themselves in the palette (`Bind`), and the commands nodes offer (one
per LoRA adapter, the demo comparison, ...). Nothing here names an action: a new key is a new entry. Key
hints come from the bindings and the user's keymap. Textual's own provider stays beside this one (themes,
quit, screenshots).
"""

from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen

from tui.commands import Bind, Command, OffersCommands
from tui.keymap import binding_owners, key_hint, with_keys


def declared_bindings(node: DOMNode) -> dict[str, Binding]:
    """The keys `node`'s classes declare with an id and a description, by id (a subclass's win); Textual's
    own classes' keys are left to Textual's provider."""
    found: dict[str, Binding] = {}
    for cls in reversed(type(node).__mro__):
        if cls.__module__.startswith("textual."):
            continue
        for binding in vars(cls).get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id and binding.description:
                found[binding.id] = binding
    return found


def key_commands(node: DOMNode, group: str, every: bool) -> list[Command]:
    """`node`'s keys as entries: each one (`every`: the screen's), else the `Bind`s that name themselves."""
    out = []
    for binding_id, binding in declared_bindings(node).items():
        name = binding.palette if isinstance(binding, Bind) else ""
        if name or every:
            hint = f"({key_hint(node.app, binding_id, type(node).__mro__)})"  # as the keymap has it now
            out.append(
                Command(
                    name or f"{group}: {binding.description}",
                    f"{binding.tooltip} {hint}" if binding.tooltip else hint,
                    partial(node.app.run_action, binding.action, node),
                )
            )
    return out


def screen_commands(screen: Screen) -> list[Command]:
    """What `screen` offers: its keys, its nodes' and the app's named keys, then their commands."""
    group = type(screen).__name__.removesuffix("Screen").lower() or "screen"
    nodes = [screen, *screen.query("*")]
    out = key_commands(screen, group, every=True)
    for node in nodes[1:]:
        out += key_commands(node, group, every=False)
    out += key_commands(screen.app, "app", every=False)
    for node in [*nodes, screen.app]:
        if isinstance(node, OffersCommands):
            out += node.palette_commands()
    return out


class TunelabCommands(Provider):
    def _keyed(self) -> list[Command]:
        """The screen's commands with each help's key as the user's keymap has it now."""
        owners = binding_owners()
        return [
            Command(name, with_keys(self.app, help_text, owners), run)
            for name, help_text, run in screen_commands(self.screen)
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
