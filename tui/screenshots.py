"""`python -m tui.screenshots [FOLDER]` (`make screenshots`): the README's pictures, taken from the real
app driving the real model worker on the demo model, in a throwaway data and config dir. `--quick` (the
suite's check) takes the same pictures from shorter training runs."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SIZE = (110, 32)


async def until(pilot, predicate, timeout: float = 180.0, every: float = 0.05) -> None:
    """Let the app run until `predicate` holds (a timeout guards against a hang)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the app did not get there in time")
        await pilot.pause(every)


def _still(app) -> None:
    from textual.widgets import Input, TextArea

    for widget in [*app.query(TextArea).results(), *app.query(Input).results()]:
        widget.cursor_blink = False


def _shorten_the_demo_plan(app) -> None:
    """The same comparison from 2-step LoRAs graded on 16 items: every part of the picture, in seconds."""
    plan_of = app.workbench.demo_plan

    def quick(options):
        plan = plan_of(options)
        return replace(
            plan, train=[replace(c, max_steps=2) for c in plan.train], request=replace(plan.request, limit=16)
        )

    app.workbench.demo_plan = quick


async def take(folder: Path, quick: bool = False) -> list[Path]:
    from textual.widgets import Input, Select, TextArea

    from tui.app import TunelabApp
    from tui.screens.verdict import VerdictScreen
    from tui.widgets.training_pane import TrainingPane

    app = TunelabApp()
    if quick:
        _shorten_the_demo_plan(app)
    shots: list[Path] = []

    async def shot(name: str) -> None:
        _still(app)
        await pilot.pause(0.3)
        shots.append(Path(app.save_screenshot(f"{name}.svg", str(folder))))

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main.model_ready and app.query("#eval-split"))
        app.query_one("#prompt-name", Input).value = "senti"
        app.query_one("#mode-select", Select).value = "raw"
        app.query_one("#prompt-text", TextArea).text = "{{text}} Overall, this review is"
        app.query_one("#param-max_new_tokens", Input).value = "8"
        await pilot.press("ctrl+g")
        await until(pilot, lambda: app.main.evals.token is None)
        await shot("eval-matrix")
        app.query_one("#mode-select", Select).value = "auto"
        app.query_one("#prompt-name", Input).value = "story"
        app.query_one("#prompt-text", TextArea).text = "Tell me a short story."
        app.query_one("#param-max_new_tokens", Input).value = "64"
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.main.generation is None)
        await app.settled()
        await shot("main")
        app.main.action_compare_demo()  # the first-start action: two LoRAs, every cell, the verdict
        await until(pilot, lambda: isinstance(app.screen, VerdictScreen), timeout=600)
        await shot("verdict")
        await pilot.press("escape")
        pane = app.query_one(TrainingPane)  # the comparison's LoRAs are the monitor's runs
        await until(pilot, lambda: pane.selected is not None and pane.last_state.get(pane.selected) == "done")
        pane.focus()
        await shot("training-monitor")
        await pilot.press("f8")
        await until(pilot, lambda: getattr(app.screen, "record", None) is not None)
        await shot("history")
    return shots


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    folder = Path(argv[0] if argv else "docs/screenshots").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUNELAB_HOME"] = str(Path(tmp) / "data")
        os.environ["TUNELAB_CONFIG_DIR"] = str(Path(tmp) / "config")
        os.environ["HF_HUB_OFFLINE"] = "1"
        for path in asyncio.run(take(folder, quick)):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
