"""The verdict screen, as a person uses it: f9, the grid, enter on a cell and on an item, t and w."""

import dataclasses
from html.parser import HTMLParser

from textual.widgets import Button, DataTable, Input, Select

from core.training.runs import Runs
from core.workbench.compare import DEMO_PROMPT, DEMO_SHOTS_PROMPT
from core.workbench.service import Workbench
from tests.seeded import SENTI, comparison_eval, finish, finished_run
from tests.tui_helpers import fake_app, wait_for
from tui.screens.cell_items import CellItemsScreen
from tui.screens.item_outputs import ItemOutputsScreen
from tui.screens.verdict import VerdictScreen


def seeded(home):
    run_id = finished_run(home, fixed_id="t0000lora-asis", adapter=True)
    return run_id, comparison_eval(home, run_id)


async def open_verdict(pilot):
    await wait_for(pilot, lambda: pilot.app.main.model_ready)
    await pilot.press("f9")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, VerdictScreen))
    await pilot.pause()
    return pilot.app.screen


def notes(app) -> dict[str, str]:
    """The notifications on screen now: message -> severity."""
    return {n.message: n.severity for n in app._notifications}


def cell_texts(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


async def test_f9_shows_the_grid_the_verdict_the_costs_and_the_foreign_prompt_mark(home):
    seeded(home)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_verdict(pilot)
        table = screen.query_one(DataTable)
        rows = cell_texts(table)
        assert [r[0] for r in rows] == ["demo (base)", "demo+t0000lora as is"]
        assert [str(c.label) for c in table.columns.values()][1:] == ["no prompt", f"senti@{SENTI.id[:6]} raw"]
        assert rows[1][1].startswith("★ 90.0% [") and rows[0][2].startswith("○ 60.0% [")  # winner and its rival
        assert rows[1][2].startswith("! 20.0%")  # a LoRA trained as is, used with the prompt
        assert "ms 20+2 tok" in rows[0][1] and "26+2 tok" in rows[0][2]  # latency, prompt+completion tokens
        sentence = str(screen.query_one("#verdict-sentence").render())
        assert sentence.startswith("The LoRA alone wins") and "90.0% vs 60.0% for the prompt alone" in sentence
        assert "fixed 6, broken 0 of 20 items" in sentence
        notes = str(screen.query_one("#verdict-notes-text").render())
        assert "trained as is (no prompt), here used with this prompt" in notes
        assert "trained 42 s on cpu, 0.10M params, 0.3 MB" in notes and "+6 prompt tokens per call" in notes
        assert (table.cursor_row, table.cursor_column) == (1, 1)  # the cursor starts on the winner
        await pilot.press("escape")
        assert not isinstance(app.screen, VerdictScreen)


async def test_enter_on_a_cell_lists_fixed_and_broken_then_enter_on_an_item_shows_every_output(home):
    seeded(home)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_verdict(pilot)
        await pilot.press("enter")  # on the winner: against the verdict's other cell
        await wait_for(pilot, lambda: isinstance(app.screen, CellItemsScreen))
        await pilot.pause()
        items = app.screen.query_one(DataTable)
        title = str(app.screen.query_one("#cell-title").render())
        assert "vs senti@" in title and "fixed 6, broken 0" in title
        assert [items.get_row_at(r)[0] for r in range(items.row_count)] == [f"i{i}" for i in range(12, 18)]
        await pilot.press("o")  # against the next cell: the LoRA with the prompt
        await pilot.pause()
        assert "fixed 14, broken 0" in str(app.screen.query_one("#cell-title").render())
        await pilot.press("o")  # and the next: the base with no prompt
        await pilot.pause()
        assert "fixed 16, broken 0" in str(app.screen.query_one("#cell-title").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ItemOutputsScreen))
        screen = app.screen
        await wait_for(pilot, lambda: "loading" not in str(screen.query_one("#item-input").render()))
        outputs = screen.query_one(DataTable)
        assert outputs.row_count == 4  # every cell's output for this item, side by side
        assert [str(outputs.get_row_at(r)[1]) for r in range(4)] == ["✗", "✓", "✓", "✓"]  # item i02
        assert "expected: positive" in str(screen.query_one("#item-title").render())
        assert "no longer in demo" in str(screen.query_one("#item-input").render())  # seeded ids, not demo's
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, VerdictScreen)


async def test_t_trains_a_lora_on_the_prompt_it_was_used_with(home, monkeypatch):
    run_id, _ = seeded(home)
    app = fake_app(home)
    started = []
    monkeypatch.setattr(app.workbench, "start_run", lambda config: started.append(config) or "t0000new")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_verdict(pilot)
        await pilot.press("t")  # on the winner: trained and used as is, nothing to do
        await pilot.pause()
        assert not started
        screen.query_one(DataTable).move_cursor(row=1, column=2)
        await pilot.press("t")
        await wait_for(pilot, lambda: bool(started))
        assert started[0].template == SENTI.template and started[0].mode == "raw"
        assert started[0].max_steps == 12  # the LoRA's own settings, on the prompt instead


async def test_w_writes_the_report_it_shows(home):
    seeded(home)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_verdict(pilot)
        await pilot.press("w")
        await pilot.pause()
        path = home / "report.html"
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: path.exists())
    texts: list[str] = []

    class Texts(HTMLParser):
        def handle_data(self, data):
            texts.append(data)

    Texts().feed(path.read_text())
    assert any(t.startswith("The LoRA alone wins") for t in texts)
    assert any(t.startswith("90.0% [") for t in texts) and "<svg" in path.read_text()


async def test_f9_without_a_complete_eval_says_what_to_do(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        await pilot.press("f9")
        await pilot.pause(0.2)
        await app.settled()
        assert not isinstance(app.screen, VerdictScreen)
        assert any("No complete eval yet" in n.message for n in app._notifications)


async def test_a_first_start_offers_the_demo_comparison_which_trains_both_loras_and_opens_the_verdict(
    home, monkeypatch
):
    """The first five minutes, shortened: the same plan with 2 training steps and 8 items, on the fake model,
    each run's process faked as ending done at once (`tui.screenshots --quick` runs it for real, in test_ux)."""
    monkeypatch.setattr(Runs, "launch", lambda runs, run_id, *_, **__: finish(runs.path(run_id), 2, adapter=True))
    demo_plan = Workbench.demo_plan

    def quick(self, options):
        plan = demo_plan(self, options)
        return dataclasses.replace(
            plan,
            train=[dataclasses.replace(c, max_steps=2) for c in plan.train],
            request=dataclasses.replace(plan.request, limit=8),
        )

    monkeypatch.setattr(Workbench, "demo_plan", quick)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready)
        button = app.query_one("#compare-demo", Button)
        await wait_for(pilot, lambda: button.display)
        await pilot.pause()  # laid out before the click
        await pilot.click("#compare-demo")
        await wait_for(pilot, lambda: isinstance(app.screen, VerdictScreen))
        assert app.query_one("#prompt-text").text == DEMO_PROMPT.template
        assert app.query_one("#mode-select", Select).value == "raw" and not button.display
        # pushed is not yet mounted: the test ends only once the grid is on screen, never while it composes
        await wait_for(pilot, lambda: any(t.row_count for t in app.screen.query("#verdict-grid").results(DataTable)))
        grid = app.screen.comparison.grid
        assert [r.label.split("+")[0] for r in grid.rows] == ["demo (base)", "demo", "demo"]
        assert [r.trained_on for r in grid.rows[1:]] == ["as is", f"senti@{DEMO_PROMPT.id[:6]} raw"]
        shots = f"senti-4shot@{DEMO_SHOTS_PROMPT.id[:6]} raw 4-shot random"  # the training rows in the prompt
        assert [c.label for c in grid.cols] == ["no prompt", f"senti@{DEMO_PROMPT.id[:6]} raw", shots]
        assert app.screen.comparison.summary.status == "done" and len(grid.cells) == 9
        assert len(app.main.evals.columns) == 9  # the comparison started the matrix clean
        runs = sorted(p.name for p in (home / "runs").iterdir())
        assert len(runs) == 2 and all((home / "runs" / r / "adapter").is_dir() for r in runs)


async def test_f_on_the_verdict_judges_the_cells_once_on_the_sealed_split(home, tmp_path):
    """A dataset with its own test split: iterate on its eval rows (ctrl+g), then f on the verdict runs the
    same cells on the sealed rows and opens their verdict; a second f there says each look is counted."""
    import json

    folder = tmp_path / "data"
    folder.mkdir()
    for split, n in (("train", 8), ("eval", 10), ("test", 10)):
        rows = [{"id": f"{split}{i}", "text": f"great film {i}", "label": "positive"} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.main.model_ready and app.query("#eval-dataset"))
        app.query_one("#eval-dataset", Input).value = f"{folder} expected=label"
        app.query_one("#prompt-text").text = "{{text}} Overall, this review is"
        app.query_one("#mode-select", Select).value = "raw"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.main.evals.token is None and app.main.evals.last is not None)
        screen = await open_verdict(pilot)
        assert not screen.comparison.verdict.sentence.startswith("On the sealed test split")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, VerdictScreen) and app.screen is not screen)
        final_screen = app.screen
        final = final_screen.comparison
        assert final.summary.split == "test" and final.summary.n_items == 10
        assert final.verdict.sentence.startswith("On the sealed test split, the two cells chosen on the dev rows: ")
        counted = "This verdict is on the sealed split already; each look is counted."
        assert counted not in notes(app)
        await pilot.press("f")
        await wait_for(pilot, lambda: counted in notes(app))
        assert notes(app)[counted] == "warning" and app.screen is final_screen  # no second look taken
        assert app.screen.comparison.summary.split == "test"


async def test_b_runs_p_w_p_from_the_cells_prompt_shows_its_progress_and_opens_its_verdict(home, monkeypatch):
    """The verdict screen's "Both together": the prompt under the cursor, the budget asked, each step on the
    progress line while the worker runs, then the verdict with its rows (the steps themselves are faked here:
    tests/unit/test_together.py runs them)."""
    import threading

    import core.workbench.together as together
    from tui.screens.ask import AskScreen

    seeded(home)
    asked, go = [], threading.Event()

    def steps_run(workbench, plan, engine, steps, *, both=False, distill=None):
        asked.append((plan.prompts[0].name, plan.prompts[0].version.id, steps.budget, steps.dev.split, both))
        steps.watcher.phase("p: optimize senti on demo")
        steps.watcher.progress(120, 250)
        go.wait(10)
        summary = workbench.evals.load("e0000snapshot")
        return together.Together(workbench.verdicts.comparison(summary), ["p: senti-opt@abc123, best of 9"])

    monkeypatch.setattr(together, "compare_together", steps_run)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_verdict(pilot)
        screen.query_one(DataTable).move_cursor(row=0, column=2)  # the prompt's column
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, AskScreen))
        app.screen.query_one(Input).value = "250"
        await pilot.press("enter")
        line = screen.query_one("#verdict-progress")
        await wait_for(pilot, lambda: "120/250" in str(line.render()))
        assert str(line.render()) == "Both together · p: optimize senti on demo · 120/250 · esc stops it"
        await pilot.press("b")  # one at a time
        await wait_for(pilot, lambda: "Both together is running; esc stops it." in notes(app))
        go.set()
        await wait_for(pilot, lambda: isinstance(app.screen, VerdictScreen) and app.screen is not screen)
        await wait_for(pilot, lambda: "p: senti-opt@abc123, best of 9" in notes(app))
    assert asked == [("senti", SENTI.id, 250, "eval", True)]


async def test_esc_stops_a_p_w_p_in_flight_and_says_nothing_more(home, monkeypatch):
    import threading

    import core.workbench.together as together
    from core.errors import TunelabError

    seeded(home)
    stopped = threading.Event()

    def steps_run(workbench, plan, engine, steps, *, both=False, distill=None):
        steps.watcher.phase("traces: senti on the training rows")
        if steps.cancel.wait(10):
            stopped.set()
        raise TunelabError("comparison cancelled: training run t1 stops at its next step")

    monkeypatch.setattr(together, "compare_together", steps_run)
    app = fake_app(home)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_verdict(pilot)
        await pilot.press("b")
        await pilot.pause()
        await pilot.press("enter")  # the budget as offered
        await wait_for(pilot, lambda: "traces: senti" in str(screen.query_one("#verdict-progress").render()))
        await pilot.press("escape")
        await wait_for(pilot, stopped.is_set)
        await pilot.pause(0.1)
        assert not isinstance(app.screen, VerdictScreen)
        assert not [n for n, severity in notes(app).items() if severity == "error"]


async def test_d_distills_the_prompt_under_the_cursor_and_needs_a_prompt_column(home, monkeypatch):
    """The verdict screen's "Distill this prompt": the column's prompt handed to the use case as the one to
    distill (no search: nothing asked), its progress line, then the verdict with its rows (the use case faked)."""
    import threading

    import core.workbench.together as together

    seeded(home)
    asked, go = [], threading.Event()

    def steps_run(workbench, plan, engine, steps, *, both=False, distill=None):
        asked.append((distill.name, distill.version.id, plan.prompts[0].version.id, steps.dev.split, both))
        steps.watcher.phase("traces: senti on the training rows")
        go.wait(10)
        summary = workbench.evals.load("e0000snapshot")
        return together.Together(workbench.verdicts.comparison(summary), ["distilled: LoRA t1 trained on them"])

    monkeypatch.setattr(together, "compare_together", steps_run)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_verdict(pilot)
        screen.query_one(DataTable).move_cursor(row=0, column=1)  # "no prompt"
        await pilot.press("d")
        needs = "Distill needs a prompt column: move the cursor to one."
        await wait_for(pilot, lambda: needs in notes(app))
        assert not asked and not screen.query_one("#verdict-progress").display
        screen.query_one(DataTable).move_cursor(row=0, column=2)  # the prompt's column
        await pilot.press("d")
        line = screen.query_one("#verdict-progress")
        await wait_for(pilot, lambda: "traces: senti" in str(line.render()))
        assert str(line.render()) == "Distill · traces: senti on the training rows · esc stops it"
        await pilot.press("b")  # one at a time
        await wait_for(pilot, lambda: "Distill is running; esc stops it." in notes(app))
        go.set()
        await wait_for(pilot, lambda: isinstance(app.screen, VerdictScreen) and app.screen is not screen)
        await wait_for(pilot, lambda: "distilled: LoRA t1 trained on them" in notes(app))
    assert asked == [("senti", SENTI.id, SENTI.id, "eval", False)]
