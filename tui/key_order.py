"""When the action of a key runs: after the keys typed before it (`in_key_order`), and, for the main screen's
workbench keys, once the screen is started (`after_start`). Either way what it reads is what the screen shows."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from tui.screens.main import MainScreen

Node = TypeVar("Node", bound="DOMNode")


def in_key_order(action: Callable[[Node], None]) -> Callable[[Node], None]:
    """For the action of a priority key that reads what was typed (ctrl+r runs the prompt on screen). Textual
    runs a priority binding as the app takes its key off the app's queue, while the keys before it wait in
    the focused widget's own queue: in a burst (tmux send-keys, a paste, a fast typist on a busy machine)
    ctrl+r read the prompt before its last characters were in, and ran an older text or none. The action
    waits behind those keys in the focused widget's queue (on its screen), so it reads what the pane shows."""

    @wraps(action)
    def ordered(node: Node) -> None:
        focused = node.app.focused
        if focused is None or focused.screen is not node.screen or not focused.call_later(action, node):
            action(node)

    return ordered


def after_start(action: Callable[[MainScreen], None]) -> Callable[[MainScreen], None]:
    """Parts of the main screen mount just after the first frame (`Lazy`, `Deferred`): the Eval tab, the
    training pane, most prompt fields. A key pressed before the start acts when `MainScreen.start` is done
    (every pane mounted with all it holds), in order. (Posted again on every pass until then, it kept the
    loop from ever waiting: the start-up worker's hand-over never ran and the app hung.)"""

    @wraps(action)
    def when_started(screen: MainScreen) -> None:
        if screen.tunelab.started:
            action(screen)
        else:
            screen.waiting.append(lambda: when_started(screen))

    return when_started
