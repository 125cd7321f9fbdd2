"""A placeholder for a pane whose module loads after the first frame. Textual's `Lazy` defers the
mount but takes a built widget, so its module is imported before the first frame; this one takes a
factory and builds the widget when the app fills it (once the start-up imports are done)."""

from __future__ import annotations

from collections.abc import Callable

from textual.widget import Widget


class Deferred(Widget):
    DEFAULT_CSS = "Deferred { display: none; }"

    def __init__(self, build: Callable[[], Widget]) -> None:
        super().__init__()
        self.build = build
        self.filled = False

    async def fill(self) -> None:
        """Mount the built widget in this place, then leave (once); done when the widget is composed and
        mounted, with all it holds (as Textual's `Lazy` leaves)."""
        parent = self.parent
        if self.filled or not isinstance(parent, Widget):
            return
        self.filled = True
        await parent.mount(self.build(), after=self)
        await self.remove()
