"""Pilot tests of the prompt pane's shots fields, on the scripted model."""

from textual.widgets import Input, Select

from core.history.store import History
from tests.tui_helpers import fake_app, wait_for
from tui.screens.rendered import RenderedScreen


async def set_prompt(pilot, name: str, template: str, mode: str = "auto") -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.query("#params"))
    app.query_one("#prompt-name", Input).value = name
    app.query_one("#mode-select", Select).value = mode
    app.query_one("#prompt-text").text = template
    app.query_one("#prompt-text").focus()
    await pilot.pause()


async def test_shots_in_the_prompt_pane_show_in_the_rendered_prompt_and_a_bad_one_is_named(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await set_prompt(pilot, "senti", "{{text}} Overall, this review is", mode="raw")
        app.query_one("#param-shots", Input).value = "two"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "shots must be a whole number" in str(app.query_one("#result-stats").render()))
        assert "got 'two'" in str(app.query_one("#result-stats").render())
        app.query_one("#param-shots", Input).value = "2"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, RenderedScreen))
        text = app.screen.query_one("#rendered-text").text
        examples = text.split("\n\n")
        assert len(examples) == 3 and all(e.count("Overall, this review is") == 1 for e in examples)
        assert examples[0].endswith(("is positive", "is negative")) and examples[1].endswith(("positive", "negative"))
        assert examples[2].endswith("Overall, this review is")  # the item comes last, unanswered
        await pilot.press("escape")
        assert app.main.prompt.version().shots_label == "2-shot random"
        app.query_one("#param-select", Select).value = "similar"
        assert app.main.prompt.state()["shots"]["select"] == "similar"  # kept for the next start with the rest


async def test_an_eval_of_a_k_shot_version_reopens_with_its_shots(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_prompt(pilot, "senti", "{{text}} Overall, this review is", mode="raw")
        app.query_one("#param-shots", Input).value = "4"
        app.query_one("#param-select", Select).value = "similar"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.main.evals.token is None and app.main.evals.columns)
        assert "4-shot similar" in app.main.evals.columns[-1].label
        app.query_one("#param-shots", Input).value = "0"
        app.query_one("#param-select", Select).value = "random"
        app.main.reopen(History(home).recent(1)[0])  # the eval's record, as enter in history opens it
        await pilot.pause()
        assert app.query_one("#param-shots", Input).value == "4"
        assert app.main.prompt.version().shots_label == "4-shot similar"
