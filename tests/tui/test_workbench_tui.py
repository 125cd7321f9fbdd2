"""Pilot tests of the prompt workbench: eval matrix, baseline pinning, versions, rendered prompt."""

import pytest
from textual.widgets import DataTable, Input, Select, TabbedContent

from core.data.prompts import PromptStore
from core.evals.stored import EvalRuns
from core.history.store import History
from tests.tui_helpers import StartedApp, fake_app, run_prompt, wait_for
from tui.screens.rendered import RenderedScreen
from tui.screens.versions import VersionsScreen
from tui.widgets.eval_pane import EvalPane


def first_rate_label(pane) -> str:
    return f"{pane.columns[1].summary.variants[1].pass_rate:.0%}"


async def set_prompt(pilot, name: str, template: str) -> None:
    app = pilot.app
    app.query_one("#prompt-name", Input).value = name
    app.query_one("#prompt-text").text = template
    app.query_one("#prompt-text").focus()
    await pilot.pause()


async def run_eval(pilot) -> None:
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: pilot.app.main.evals.token is None)


async def test_two_versions_matrix_baseline_fixed_and_broken(home):
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await run_eval(pilot)
        assert app.query_one(TabbedContent).active == "tab-eval"
        pane = app.query_one(EvalPane)
        table = app.query_one("#eval-table", DataTable)
        assert table.row_count == 120 and len(table.columns) == 3  # item, no prompt, senti
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[1:] == ["0 0%", f"1 {first_rate_label(pane)}"]
        first_rate = pane.columns[1].summary.variants[1].pass_rate
        assert pane.columns[1].short.startswith("senti@")
        assert 0.5 < first_rate < 1.0

        await set_prompt(pilot, "senti", "{{text}} Overall, this review is")
        await run_eval(pilot)
        assert len(table.columns) == 4 and [c.variant for c in pane.columns] == [0, 1, 0]

        table.focus()
        table.move_cursor(column=2)  # senti v1
        await pilot.press("b")
        await pilot.pause()
        assert pane.baseline is not None and pane.baseline[1] == 1
        summary = str(app.query_one("#eval-summary").render())
        assert "1 senti@" in summary and "*baseline" in summary and "% [" in summary
        assert str(table.columns[list(table.columns)[2]].label).endswith("*")
        line = next(ln for ln in summary.splitlines() if ln.startswith("2 senti"))
        assert "fixed" in line and "broken" in line
        fixed = int(line.split("fixed ")[1].split()[0])
        broken = int(line.split("broken ")[1].split()[0])
        assert fixed > 0 and broken > 0  # always-positive fixes fooled positives, breaks negatives
        cells = [str(table.get_cell_at((r, 3))) for r in range(table.row_count)]
        assert sum(c.startswith("✓+") for c in cells) == fixed and sum(c.startswith("✗-") for c in cells) == broken

    pinned, variant = EvalRuns(home).baseline_for("demo", "eval")
    assert variant == 1 and pinned.variants[1].prompt_name == "senti"
    assert len(PromptStore(home).versions("senti")) == 2


async def test_a_reasoning_models_cells_show_and_grade_its_answer_not_its_thinking(home):
    app = fake_app(home, thinks=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await run_eval(pilot)
        pane = app.query_one(EvalPane)
        table = app.query_one("#eval-table", DataTable)
        assert pane.columns[1].summary.variants[1].pass_rate > 0.5
        cells = {str(table.get_cell_at((r, 2))) for r in range(table.row_count)}
        assert cells <= {"✓ positive", "✗ positive", "✓ negative", "✗ negative"} and len(cells) > 1
        assert pane.columns[1].summary.scores(1)[next(iter(pane.items))].majority.startswith("<think>")


async def test_template_error_names_the_variable_and_runs_nothing(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_prompt(pilot, "bad", "{{review}} is")
        await run_eval(pilot)
        status = str(app.query_one("#result-stats").render())
        assert "eval.jsonl:1: template variable '{{review}}' has no value" in status
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.client.requests == []
        await set_prompt(pilot, "bad", "{{ text.upper }}")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "attribute or item access is not allowed" in str(app.query_one("#result-stats").render())


async def test_single_run_fills_variables_from_the_first_row_and_saves_the_version(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.generation is None)
        await app.settled()
    sent = app.client.requests[0]["prompt"]
    assert sent.endswith("\nSentiment:") and "{{" not in sent and len(sent) > 30
    record = History(home).recent(1)[0]
    assert record["prompt_name"] == "senti" and record["template"] == "{{text}}\nSentiment:"
    assert PromptStore(home).get("senti")[0]["id"] == record["prompt_version"]


async def test_rendered_prompt_and_versions_diff(home):
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await set_prompt(pilot, "p", "Hello there")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, RenderedScreen))
        assert app.screen.query_one("#rendered-text").text == "<|user|>\nHello there<|end|>\n<|assistant|>\n"
        await pilot.press("escape")
        for text in ("Hello there", "Hello again"):
            await set_prompt(pilot, "p", text)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.main.generation is None)
        await app.settled()
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, VersionsScreen))
        await pilot.press("down")
        await pilot.pause()
        diff = str(app.screen.query_one("#diff").render())
        assert "-Hello again" in diff and "+Hello there" in diff
        options = app.screen.query_one("#versions-list")
        marks = lambda: [str(options.get_option_at_index(i).prompt)[:2] for i in range(2)]  # noqa: E731
        assert marks() == ["A ", "  "]  # A is the newest until another is marked
        await pilot.press("space")
        await pilot.pause()
        assert marks() == ["  ", "A "]


@pytest.mark.slow
async def test_the_real_worker_streams_a_run_then_fills_the_eval_matrix(home):
    """The real model worker behind the app (one worker start covers both: it costs seconds of imports)."""
    app = StartedApp("demo", home=home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready, timeout=120)
        await run_prompt(pilot, "Tell me a short story.")
        shown = app.main.results.output.text
        assert len(shown.split()) >= 5 and "tok/s" in str(app.query_one("#result-stats").render())
        assert History(home).recent(1)[0]["output"] == shown
        app.query_one("#mode-select").value = "raw"
        await set_prompt(pilot, "senti", "{{text}} Overall, this review is")
        app.query_one("#param-max_new_tokens", Input).value = "3"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.main.evals.token is None, timeout=300)
        pane = app.query_one(EvalPane)
        rates = [c.summary.variants[c.variant].pass_rate for c in pane.columns]
        assert rates[0] == 0.0 and rates[1] > 0.6
        assert app.query_one("#eval-table", DataTable).row_count == 120


async def test_repeats_from_the_form_and_bad_repeat_is_named(home):
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        app.query_one("#eval-repeat", Input).value = "two"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "repeat must be a whole number, got 'two'" in str(app.query_one("#result-stats").render())
        app.query_one("#eval-repeat", Input).value = "2"
        app.query_one("#param-temperature", Input).value = "0.7"
        await run_eval(pilot)
        column = app.query_one(EvalPane).columns[1]
        assert column.summary.repeat == 2 and column.summary.variants[1].trials == 240


async def test_field_mapping_from_the_data_field(home, tmp_path):
    data = tmp_path / "qa.csv"
    data.write_text("question,answer\nHow was it? I love it,positive\nAny good? It is awful,negative\n")
    app = fake_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query("#eval-dataset"))  # the hidden Eval tab mounts after the first frame
        app.query_one("#eval-dataset", Input).value = f"{data} expected=answer text=question"
        app.query_one("#eval-split", Input).value = "all"
        await set_prompt(pilot, "qa", "{{text}}\nSentiment:")
        await run_eval(pilot)
        column = app.query_one(EvalPane).columns[1]
        assert column.summary.n_items == 2 and column.summary.variants[1].pass_rate == 1.0
        app.query_one("#eval-dataset", Input).value = f"{data} answer"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "data field: 'answer' is not VAR=FIELD" in str(app.query_one("#result-stats").render())


async def test_rendering_a_chat_prompt_without_a_template_is_one_line_error(home):
    app = fake_app(home, chat_template=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#mode-select", Select).value = "chat"
        await set_prompt(pilot, "p", "Hello there")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "has no chat template" in str(app.query_one("#result-stats").render()))
        assert not isinstance(app.screen, RenderedScreen)


async def test_a_cancelled_eval_is_partial_gives_no_verdict_and_a_rerun_completes(home):
    import threading

    gate = threading.Event()
    app = fake_app(home, gate=gate)
    async with app.run_test(size=(120, 40)) as pilot:
        await set_prompt(pilot, "senti", "{{text}}\nSentiment:")
        await pilot.press("ctrl+g")
        pane = app.query_one(EvalPane)
        await wait_for(pilot, lambda: any(c.live for c in pane.columns))  # the first item is graded
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.main.evals.token is None)
        verdict = str(app.query_one("#eval-verdict").render())
        assert verdict == "Eval cancelled: a partial eval gives no verdict and cannot be a baseline."
        (cancelled,) = EvalRuns(home).list()
        assert cancelled.status == "cancelled" and pane.columns == []  # listed, but out of the matrix
        gate.set()
        await run_eval(pilot)
        newest = EvalRuns(home).list()[0]
        assert newest.status == "done" and [v.trials for v in newest.variants] == [120, 120]
        assert " wins (" in str(app.query_one("#eval-verdict").render())


async def test_the_dataset_form_is_the_screens_and_a_pane_asks_the_screen_by_message(home):
    """The dataset form is a widget of its own that the main screen composes (in the Eval tab, above the
    matrix) and reads for an eval, a run and a training run; the eval pane holds none of it. A pane asks the
    screen by posting: `Reveal` brings its tab to the front, `Announce` toasts only while the pane is out of
    sight, `WorkbenchFailed` is the status line's error."""
    from tui.messages import Announce, Reveal, WorkbenchFailed
    from tui.widgets.dataset_form import DatasetForm

    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        main, pane = app.main, app.query_one(EvalPane)
        form = app.query_one(DatasetForm)
        assert form is main.dataset and not pane.query(DatasetForm) and form.parent is pane.parent
        app.query_one("#eval-dataset", Input).value = "demo expected=label"
        app.query_one("#eval-repeat", Input).value = "3"
        request = main.dataset.request()
        assert (request.dataset, request.expected, request.repeat, request.grader) == ("demo", "label", 3, "labels")

        def said(text: str) -> bool:
            return any(n.message == text for n in app._notifications)

        assert app.query_one(TabbedContent).active == "tab-output"
        pane.post_message(Announce(pane, "done out of sight"))
        await wait_for(pilot, lambda: said("done out of sight"))
        pane.post_message(Reveal(pane))
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "tab-eval")
        pane.post_message(Announce(pane, "done in sight"))
        pane.post_message(WorkbenchFailed("the pane's error"))
        await wait_for(pilot, lambda: "the pane's error" in str(main.results.query_one("#result-stats").render()))
        assert not said("done in sight")
