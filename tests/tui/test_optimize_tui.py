"""Pilot tests of 'Optimize this prompt' (the search screen) and the prompt pane's shots fields, on the
scripted model."""

import threading

from textual.widgets import DataTable, Input, Select

from core.evals.stored import EvalRuns
from core.history.query import parse_query
from core.history.store import History
from tests.tui_helpers import fake_app, wait_for
from tui.screens.optimize import OptimizeScreen
from tui.screens.rendered import RenderedScreen


async def set_prompt(pilot, name: str, template: str, mode: str = "auto") -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.query("#params"))
    app.query_one("#prompt-name", Input).value = name
    app.query_one("#mode-select", Select).value = mode
    app.query_one("#prompt-text").text = template
    app.query_one("#prompt-text").focus()
    await pilot.pause()


def said(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def test_optimize_from_the_palette_shows_rows_live_and_enter_opens_a_candidate(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await pilot.press("ctrl+p", *"optimize this prompt")
        command_list = app.screen.query_one("CommandList")
        await wait_for(pilot, lambda: command_list.option_count > 0)
        shown = str(command_list.get_option_at_index(0).prompt)
        assert "prompt: Optimize this prompt" in shown and "(f5)" in shown
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))
        screen = app.screen
        budget = screen.query_one("#optimize-budget", Input)
        assert budget.value == "400" and budget.has_focus
        budget.value = "10"
        await pilot.press("enter")
        status = screen.query_one("#optimize-status")
        await wait_for(pilot, lambda: "budget must be at least 50" in str(status.render()))
        assert screen.state == "ready" and not budget.disabled  # one line; the budget can be changed
        budget.value = "800"  # 120 dev rows: room for the final pair and rounds of halving before it
        await pilot.press("enter")
        table = screen.query_one("#optimize-table", DataTable)
        await wait_for(pilot, lambda: table.row_count >= 10)  # the first round: every candidate on a minibatch
        first = [str(table.get_row_at(r)[0]) for r in range(table.row_count)]
        assert {"start", "shots", "instructions"} <= set(first)
        await wait_for(pilot, lambda: screen.state == "done")
        assert len(screen.points) >= 3  # a point per round (each round posted its table) and the final one
        assert screen.points == sorted(screen.points, key=lambda p: p[0])
        ended = str(status.render())
        assert "Optimize senti done" in ended and "best senti@" in ended and said(app, "Optimize senti done")
        cells = table.get_row_at(0)
        assert "% [" in str(cells[3]) and int(str(cells[4])) == 120  # the finalists, on every dev row
        shot_row = next(r for r in range(table.row_count) if str(table.get_row_at(r)[2]).endswith("seed 1"))
        chosen = screen.rows[shot_row].version
        table.focus()
        table.move_cursor(row=shot_row)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.main)
        assert app.main.prompt.version() == chosen  # template, system, mode, params and shots
        assert app.query_one("#param-shots", Input).value == str(chosen.shots.k)
        assert app.query_one("#param-select", Select).value == chosen.shots.select == "random"
        assert chosen.shots.seed == 1  # kept with the version, though the pane shows no seed of its own
    tagged = History(home).search(parse_query("tag:optimize")).rows
    assert tagged and len(tagged) == len(EvalRuns(home).list())  # every round an eval, listed as the search's


async def test_esc_stops_the_search_and_what_was_scored_stays_in_history(home):
    gate = threading.Event()  # the scripted model holds each batch after its first item
    app = fake_app(home, gate=gate)
    async with app.run_test(size=(80, 24)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await pilot.press("f5")  # the prompt pane's key
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))
        screen = app.screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("batch" in r for r in app.client.requests))
        assert screen.state == "running"
        await pilot.press("escape")
        assert screen.cancel.is_set() and isinstance(app.screen, OptimizeScreen)  # stopping, still shown
        await wait_for(pilot, lambda: screen.state == "done")
        assert "Optimize senti stopped" in str(screen.query_one("#optimize-status").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main)
    (stopped,) = EvalRuns(home).list()
    assert stopped.status == "cancelled"
    (record,) = History(home).search(parse_query("tag:optimize")).rows
    assert History(home).get(record["id"])["ref"] == stopped.id


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


async def test_strategies_and_a_proposer_from_the_screen_reach_the_search(home):
    """The form's strategies and proposer are the CLI's `--strategies` and `--proposer`: a bad one is one line
    and the form stays open; with a proposer (here the scripted model itself), reflect rewrites are candidates."""
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, OptimizeScreen))
        screen = app.screen
        status = screen.query_one("#optimize-status")
        strategies = screen.query_one("#optimize-strategies", Input)
        strategies.value = "shots,magic"
        strategies.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "takes shots, instructions, reflect" in str(status.render()))
        strategies.value = "instructions,reflect"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "reflect needs a proposer" in str(status.render()))
        assert screen.state == "ready" and not strategies.disabled
        screen.query_one("#optimize-proposer", Input).value = "demo"
        screen.query_one("#optimize-budget", Input).value = "800"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.state == "done")
        assert screen.strategies == ("instructions", "reflect") and screen.proposer == "demo"
        kinds = {row.kind for row in screen.rows}
        assert "reflect" in kinds and "shots" not in kinds  # the strategies chosen, and only they
