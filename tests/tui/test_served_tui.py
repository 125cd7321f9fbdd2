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


async def test_an_eval_graded_by_configs_served_judge_says_the_judges_cost(home, tmp_path):
    """config.toml's `judge` grades a `judge:` grader from the eval form; its cost is said apart."""
    from core.storage.config import config_path
    from tui.widgets.eval_pane import EvalPane

    server, url = serve()
    rows = tmp_path / "open.jsonl"
    rows.write_text("".join(f'{{"id": "q{i}", "text": "How is the sky {i}?"}}\n' for i in range(3)))
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(f'judge = "{url}#judge"\n')
    try:
        app = StartedApp(f"{url}#ok", client_factory=FakeClient, home=home)
        notes: list[str] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.main.model_ready and bool(app.query("#eval-grader")))
            app.notify = lambda message, **_: notes.append(str(message))  # type: ignore[method-assign]
            app.query_one("#eval-dataset", Input).value = str(rows)
            app.query_one("#eval-split", Input).value = "all"
            app.query_one("#eval-grader", Input).value = "judge:Does it describe the weather?"
            await type_prompt(pilot, "{{text}}")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: app.main.evals.token is None)
            column = app.query_one(EvalPane).columns[-1]
            assert column.summary.variants[column.variant].pass_rate == 1.0
            assert column.summary.judge.calls == 6  # the no-prompt cell and the prompt's, 3 rows each
        assert any(note.startswith(f"judge {url}#judge: 6 calls") for note in notes), notes
    finally:
        server.shutdown()
