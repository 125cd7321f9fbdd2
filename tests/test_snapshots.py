"""Layout snapshots at fixed sizes (scripted model client, cursor blink off)."""

import pytest
from textual.widgets import Input, TextArea

from tests.tui_helpers import fake_app, run_prompt


async def _after_a_run(pilot):
    for widget in pilot.app.query(TextArea).results():
        widget.cursor_blink = False
    for widget in pilot.app.query(Input).results():
        widget.cursor_blink = False
    await run_prompt(pilot, "Tell me a short story.")


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_main_screen_after_a_run(snap_compare, home, size):
    assert snap_compare(fake_app(home), terminal_size=size, run_before=_after_a_run)
