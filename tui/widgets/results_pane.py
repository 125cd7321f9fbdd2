"""The results pane: streamed output appended in place, follows the end only if already there."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Button, Static, TextArea

from tui.commands import Bind, Command

if TYPE_CHECKING:
    from core.engine.protocol import GenResult


class StreamArea(TextArea):
    """The output area. Textual re-lays out the whole screen whenever a widget's virtual size changes,
    which costs a full repaint per streamed chunk; here growth only repaints this widget and its
    scrollbar (a scrollbar appearing still triggers the one layout it needs)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)
    EDITING = ("undo", "redo", "cut", "paste", "delete_")  # TextArea's own keys that mean nothing read-only

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Editing keys are off here, so F1 and the footer never offer them."""
        return False if action.startswith(self.EDITING) else super().check_action(action, parameters)

    def watch_virtual_size(self, size: Size) -> None:
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.window_virtual_size = size.height
            self.vertical_scrollbar.refresh()
        self.refresh()


class ResultsPane(Vertical):
    BORDER_TITLE = "Results"
    HELP = (
        "The streamed output of the last run, with tokens, tok/s, latency and why it stopped. "
        "<cancel> cancels a run and keeps what streamed; <copy-output> copies the output (OSC 52 works over SSH)."
    )
    BINDINGS = [
        Bind("y", "copy_output", "Copy", id="copy-output", palette="prompt: Copy the output",
             tooltip="to the clipboard, over SSH too (OSC 52)"),
        Binding("j", "scroll(1)", "Down", id="results-down", show=False),
        Binding("k", "scroll(-1)", "Up", id="results-up", show=False),
        Binding("g", "scroll_to(0)", "Top", id="results-top", show=False),
        Binding("G", "scroll_to(-1)", "Bottom", id="results-bottom", show=False),
    ]  # fmt: skip

    def compose(self) -> ComposeResult:
        yield Button(
            "Compare on the demo task",
            id="compare-demo",
            action="screen.compare_demo",
            tooltip="prompt, LoRA, or both? loads the demo prompt, trains two small LoRAs and shows the verdict",
        )
        yield StreamArea(id="output", read_only=True, soft_wrap=True, show_line_numbers=False)
        yield Static("", id="result-stats")

    def offer_demo(self, offered: bool) -> None:
        """On a first start (nothing evaluated yet) the empty pane offers the demo comparison."""
        self.query_one("#compare-demo").display = offered
        self.output.display = not offered  # in place of the empty output: its width never changes under it

    def palette_commands(self) -> Iterator[Command]:
        yield Command(
            "eval: Compare on the demo task",
            "prompt, LoRA, or both? trains two LoRAs on the demo and shows the verdict",
            partial(self.app.run_action, "screen.compare_demo", self),
        )

    def action_copy_output(self) -> None:
        text = self.output.text
        if not text:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the output ({len(text)} characters).")

    def action_scroll(self, lines: int) -> None:
        self.output.scroll_relative(y=lines, animate=False)

    def action_scroll_to(self, where: int) -> None:
        if where < 0:
            self.output.scroll_end(animate=False)
        else:
            self.output.scroll_home(animate=False)

    @property
    def output(self) -> TextArea:
        return self.query_one("#output", TextArea)

    def set_status(self, text: str, *, error: bool = False) -> None:
        stats = self.query_one("#result-stats", Static)
        stats.set_class(error, "error")
        stats.update(text, layout=False)  # one fixed-height line: no layout pass per streamed chunk

    def begin(self) -> None:
        self.output.text = ""
        self.set_status("generating… (esc cancels)")

    def progress(self, tokens: int, elapsed: float) -> None:
        rate = f" · {tokens / elapsed:.0f} tok/s" if elapsed > 0 else ""
        self.set_status(f"{tokens} tok{rate} · esc cancels")

    def append(self, text: str) -> None:
        """One call per coalesced chunk: insert at the end without re-rendering the whole text."""
        out = self.output
        follow = out.scroll_y >= out.max_scroll_y
        out.insert(text, out.document.end, maintain_selection_offset=False)
        if follow:
            out.scroll_end(animate=False)

    def finish(self, result: GenResult) -> None:
        self.set_status(
            f"{result.completion_tokens} tok · {result.tok_per_s:.0f} tok/s · "
            f"{result.latency_s:.2f}s · {result.stop_reason}"
        )
