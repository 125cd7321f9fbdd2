"""The TUI on a served model (an OpenAI-compatible endpoint in the model field): a run streams into the
results pane and is saved; esc mid-stream cancels it and keeps what streamed."""

from textual.widgets import Input

from core.history.store import History
from tests.fakes import FakeClient
from tests.served_fakes import serve
from tests.tui_helpers import StartedApp, type_prompt, wait_for


async def test_a_served_model_streams_a_run_and_esc_cancels_one(home):
    server, url = serve()
    try:
        app = StartedApp(f"{url}#ok", client_factory=FakeClient, home=home)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.main.model_ready)
            assert "served" in app.sub_title
            await type_prompt(pilot, "Weather?")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.main.generation is None)
            await app.settled()
            assert app.main.results.output.text == "It is sunny."
            app.main.model = f"{url}#endless"
            app.query_one("#param-max_new_tokens", Input).value = "4000"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: len(app.main.results.output.text) > 20)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.main.generation is None)
            await app.settled()
        records = History(home).recent(2)
        assert [r["status"] for r in records] == ["cancelled", "done"]
        assert records[0]["output"] and records[1]["output"] == "It is sunny."
    finally:
        server.shutdown()
