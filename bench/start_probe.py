"""`python -m bench.start_probe tunelab|bare T0`: print seconds from T0 (the parent's clock before it
spawned this process) to the app's first frame, then leave at once."""

from __future__ import annotations

import os
import sys
import time


def bare_app():
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header, Static, TextArea

    class Bare(App):
        """The same widget kinds as tunelab's main screen: an editor, a table, static panes."""

        def compose(self):
            yield Header()
            yield TextArea("prompt")
            yield Static("training")
            yield DataTable()
            yield Footer()

    return Bare()


def main() -> None:
    which, t0 = sys.argv[1], float(sys.argv[2])
    if which == "tunelab":
        from tui.app import TunelabApp

        app = TunelabApp()
    else:
        app = bare_app()

    async def first_frame(pilot) -> None:
        print(f"{time.time() - t0:.4f}", flush=True)
        os._exit(0)

    app.run(headless=True, size=(120, 36), auto_pilot=first_frame)


if __name__ == "__main__":
    main()
