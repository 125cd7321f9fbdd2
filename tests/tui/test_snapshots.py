"""Layout snapshots at fixed sizes (scripted model client, cursor blink off)."""

import pytest
from textual.widgets import Input, TextArea

from tests.tui_helpers import fake_app, run_prompt, wait_for


@pytest.fixture(autouse=True)
def _steady_cursors(monkeypatch):
    """A blinking cursor is caught on or off at random (and a blink tick already queued when blinking is
    turned off still flips it once): in snapshots a cursor is shown exactly when its widget has focus."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: setattr(self, "_cursor_visible", self.has_focus))
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)


async def _after_a_run(pilot):
    await run_prompt(pilot, "Tell me a short story.")


@pytest.mark.parametrize("size", [(80, 24), (120, 36), (200, 60)])
def test_main_screen_after_a_run(snap_compare, home, size):
    assert snap_compare(fake_app(home), terminal_size=size, run_before=_after_a_run)


async def _after_two_evals(pilot):
    app = pilot.app
    await wait_for(pilot, lambda: app.query("#eval-table"))  # the hidden Eval tab mounts after the first frame
    for text in ("{{text}}\nSentiment:", "{{text}} Overall, this review is"):
        app.query_one("#prompt-name", Input).value = "senti"
        app.query_one("#prompt-text").text = text
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.main.evals.token is None)
    table = app.query_one("#eval-table")
    table.focus()
    table.move_cursor(column=2)
    await pilot.press("b")
    await pilot.pause()


def test_eval_matrix_with_baseline(snap_compare, home):
    assert snap_compare(fake_app(home), terminal_size=(100, 30), run_before=_after_two_evals)


def test_training_monitor_reattached(snap_compare, home):
    from tests.seeded import finished_run as fake_finished_run

    fake_finished_run(home, steps=40, fixed_id="t0000snapshot")

    async def settled(pilot):
        await wait_for(pilot, lambda: pilot.app.started)
        pane = pilot.app.query_one("#training-pane")
        await wait_for(pilot, lambda: pilot.app.main.model_ready and pane.selected == "t0000snapshot")
        await pilot.pause()

    assert snap_compare(fake_app(home), terminal_size=(100, 36), run_before=settled)


def seeded_history(home):
    """A few fixed records (ids and times pinned) for pictures of the history screen."""
    from core.history.store import History

    h = History(home)
    rows = [
        ("generation", "Review: a gripping, heartfelt film.\nSentiment:", " positive", None),
        ("generation", "Write a haiku about autumn.", "Leaves drift on the pond / ...", None),
        (
            "eval",
            "eval demo:eval with labels, 120 items x1",
            "no prompt | demo: 0.0% (0/120)\nsenti@3 | demo: 78.3% (94/120)",
            None,
        ),
        ("train", "demo:train as is", "LoRA r=16 on all-linear, 3.0 epochs, lr 0.002, batch 16", "t18e0snap"),
        ("generation", "Review: the plot was dull and slow.\nSentiment:", " negative", "t18e0snap"),
    ]
    ids = h.add_many(
        {
            "id": f"18e0000000000{i:03d}aaaaaa",
            "created_at": f"2026-11-2{i}T10:0{i}:00.000+00:00",
            "kind": kind,
            "status": "done",
            "model": "demo",
            "prompt": prompt,
            "output": output,
            "adapter": adapter,
            "completion_tokens": 2,
            "latency_s": 0.04,
            "prompt_name": "senti@3",
        }
        for i, (kind, prompt, output, adapter) in enumerate(rows)
    )
    h.update(ids[4], tags=["sentiment"], starred=True, label="good")
    h.update(ids[1], label="bad", correction="Leaves drift slowly / on the cold still pond / autumn says goodbye")
    return ids


def test_history_screen(snap_compare, home):
    seeded_history(home)

    async def opened(pilot):
        await pilot.press("f8")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "record", None) is not None)
        await pilot.pause()

    assert snap_compare(fake_app(home), terminal_size=(100, 30), run_before=opened)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_verdict_screen(snap_compare, home, size):
    from tests.seeded import comparison_eval, finished_run
    from tui.screens.verdict import VerdictScreen

    comparison_eval(home, finished_run(home, fixed_id="t0000lora-asis", adapter=True))

    async def opened(pilot):
        await wait_for(pilot, lambda: pilot.app.main.model_ready)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, VerdictScreen))
        await pilot.pause()

    assert snap_compare(fake_app(home), terminal_size=size, run_before=opened)
