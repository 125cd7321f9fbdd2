"""Helpers for Pilot tests: build the app on the fake client and wait on conditions, never sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from textual import events
from textual.app import App
from textual.keys import _character_to_key
from textual.pilot import Pilot

from tests.fakes import STORY, FakeClient
from tui.app import TunelabApp


class StartedApp(TunelabApp):
    """The app as tests drive it: `run_test` hands over the pilot once the parts that mount after the
    first frame are there and the start-up work has begun (a test's first step comes far sooner than a
    person's first key; the early key itself has its own test)."""

    @asynccontextmanager
    async def run_test(self, *args, **kwargs):
        async with super().run_test(*args, **kwargs) as pilot:
            await wait_for(pilot, lambda: self.started)
            yield pilot


def fake_app(home, **fake_options) -> TunelabApp:
    return StartedApp("demo", client_factory=lambda on_event: FakeClient(on_event, **fake_options), home=home)


async def wait_for(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until `predicate` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the hang guard")
        await pilot.pause(0.02)


async def type_prompt(pilot: Pilot, text: str) -> None:
    await wait_for(pilot, lambda: pilot.app.query("#prompt-text"))  # the main screen composes on its first pass
    pilot.app.query_one("#prompt-text").focus()
    await pilot.press(*text)


def burst(app: App, *keys: str) -> None:
    """Keys as a terminal hands over a burst of them (tmux send-keys, a paste, a fast typist on a busy machine):
    all on the app's queue at once, none handled before the next arrives (`pilot.press` waits after each).
    A key is a character or a key name (`ctrl+r`)."""
    for key in keys:
        if len(key) == 1:
            app.post_message(events.Key(key if key.isalnum() else _character_to_key(key), key))
        else:
            app.post_message(events.Key(key, None))


async def run_prompt(pilot: Pilot, text: str) -> None:
    await type_prompt(pilot, text)
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: pilot.app.main.generation is None)
    await pilot.app.settled()


async def start_held_run(pilot: Pilot, text: str) -> None:
    """Start a run on a gated fake client and wait until its first chunk is on screen."""
    await type_prompt(pilot, text)
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: pilot.app.main.results.output.text == STORY[0])
