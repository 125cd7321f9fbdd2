"""The data-budget curve's screen, from the verdict screen's key and the palette: a canned curve, no model."""

import random

from textual.widgets import DataTable, Input

from core.evals.budget_curve import Arm, judge_curve, point
from core.workbench.budget import save_curve
from tests.seeded import comparison_eval, finished_run
from tests.tui.test_verdict_tui import notes, open_verdict
from tests.tui_helpers import fake_app, wait_for
from tui.screens.budget_curve import NONE_HERE, NONE_YET, BudgetChart, BudgetCurveScreen


async def open_curve(pilot) -> BudgetCurveScreen:
    """The verdict's `c`: the data-budget curve screen, opened from the verdict on screen."""
    await open_verdict(pilot)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BudgetCurveScreen))
    return pilot.app.screen


def canned(home):
    """A curve where the LoRA overtakes the prompt between 64 and 480 rows, kept as compare --budget keeps it."""
    rng = random.Random(5)
    items = lambda rate: {f"i{j}": float(rng.random() < rate) for j in range(200)}  # noqa: E731
    points = [
        point(
            size,
            size == 480,
            Arm.of("4-shot similar", items(0.7)),
            Arm.of("LoRA", items(lora)),
            Arm.of("both", items(lora)),
            9,
        )
        for size, lora in ((16, 0.3), (64, 0.6), (480, 0.95))
    ]
    curve = judge_curve(points, dataset="demo", split="eval", created_at="2026-12-01T00:00:00")
    save_curve(home, curve)
    return curve


async def test_the_verdict_screens_key_shows_the_last_curve_with_its_table_chart_and_sentence(home):
    comparison_eval(home, finished_run(home, fixed_id="t0000lora-asis", adapter=True))
    app = fake_app(home)
    async with app.run_test(size=(100, 40)) as pilot:
        await open_curve(pilot)  # no curve yet: the screen says so, and how to run one
        await pilot.pause()
        assert str(app.screen.query_one("#budget-sentence").render()) == NONE_HERE
        await pilot.press("escape")
        curve = canned(home)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, BudgetCurveScreen))
        await pilot.pause()
        screen = app.screen
        rows = [[str(c) for c in screen.query_one(DataTable).get_row_at(r)] for r in range(3)]
        assert [r[0] for r in rows] == ["16", "64", "480 (all)"] and rows[0][1] == "4-shot similar (of 9)"
        assert rows[2][-1].endswith(" *") and curve.crossover == 2  # the real difference, marked
        assert str(screen.query_one("#budget-sentence").render()) == curve.sentence
        assert curve.sentence.startswith("The LoRA overtakes prompting between 64 and 480 (all) labelled rows")
        chart = screen.query_one(BudgetChart).render()
        styles = {letter: set() for letter in "PLB"}
        plot = chart.plain.index("└")  # the letters drawn above the axis
        for span in chart.spans:
            if span.end <= plot and chart.plain[span.start : span.end] in styles:
                styles[chart.plain[span.start : span.end]].add(span.style)
        assert styles == {"P": {"bold cyan"}, "L": {"bold magenta"}, "B": {"bold yellow"}}  # each arm in its colour
        assert "labelled rows (log scale)" in chart.plain and "480 (all)" in chart.plain
        await pilot.press("escape")
        assert not isinstance(app.screen, BudgetCurveScreen)


async def test_the_palette_offers_the_curve_from_anywhere(home):
    canned(home)
    app = fake_app(home)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: pilot.app.main.model_ready)
        command = next(c for c in app.palette_commands() if c.name == "verdict: Data-budget curve")
        command.run()
        await wait_for(pilot, lambda: isinstance(app.screen, BudgetCurveScreen))


async def test_r_runs_a_curve_on_the_verdicts_rows_and_first_prompt_with_its_progress_then_shows_it(home, monkeypatch):
    """The curve screen's "Run a curve" from a verdict: the sizes asked, the plan on the verdict's dataset, model
    and first prompt, each stage on the progress line, the new curve drawn at the end (the use case faked:
    tests/integration runs it)."""
    import threading

    import core.workbench.budget as budget
    from tests.seeded import SENTI
    from tui.screens.curve_form import CurveForm

    comparison_eval(home, finished_run(home, fixed_id="t0000lora-asis", adapter=True))
    asked, go = [], threading.Event()

    def plan(workbench, request, options, prompt, sizes, seeds, train_settings):
        asked.append(
            (request.dataset, request.split, options.model, options.adapter, prompt.name, prompt.version.id, sizes)
        )
        asked.append((seeds, train_settings))
        return "the plan"

    def run(workbench, plan, engine, watcher=None, cancel=None):
        assert plan == "the plan"
        watcher.stage("prompts", 16)
        watcher.progress(3, 10)
        go.wait(10)
        return canned(home)

    monkeypatch.setattr(budget, "budget_plan", plan)
    monkeypatch.setattr(budget, "run_budget", run)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_curve(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, CurveForm))
        form = app.screen
        assert [i.value for i in form.query(Input)] == ["16,64,all", "1", "6.0"]
        for field, bad, said in (
            ("sizes", "16,x", "labelled rows takes row counts like 16,64,256,all, got 'x'"),
            ("seeds", "0", "seeds must be a whole number from 1 to 20, got '0'"),
            ("epochs", "0", "epochs must be positive and at most 10000"),
        ):
            form.query_one(f"#curve-{field}", Input).value = bad
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is form and str(form.query_one("#curve-error").render()) == said
            form.query_one(f"#curve-{field}", Input).value = {"sizes": "16,all", "seeds": "2", "epochs": "2"}[field]
        await pilot.press("enter")
        line = screen.query_one("#budget-progress")
        await wait_for(pilot, lambda: "3/10" in str(line.render()))
        assert str(line.render()) == "Data-budget curve · 16 rows: prompt candidates · 3/10 · esc stops it"
        await pilot.press("r")  # one at a time
        await wait_for(pilot, lambda: "A curve is running; esc stops it." in notes(app))
        go.set()
        await wait_for(pilot, lambda: isinstance(app.screen, BudgetCurveScreen) and app.screen is not screen)
        await pilot.pause()
        rows = app.screen.query_one(DataTable).row_count
        assert rows == 3 and app.screen.curve.sentence in notes(app)
    assert asked == [("demo", "eval", "demo", None, "senti", SENTI.id, "16,all"), (2, {"epochs": 2.0})]


async def test_esc_stops_a_curve_in_flight_and_r_without_a_verdict_says_where_to_run_one(home, monkeypatch):
    import threading

    import core.workbench.budget as budget
    from core.errors import TunelabError

    comparison_eval(home, finished_run(home, fixed_id="t0000lora-asis", adapter=True))
    stopped = threading.Event()

    def run(workbench, plan, engine, watcher=None, cancel=None):
        watcher.stage("train", 16)
        if cancel.wait(10):
            stopped.set()
        raise TunelabError("comparison cancelled")

    monkeypatch.setattr(budget, "budget_plan", lambda *_, **__: "the plan")
    monkeypatch.setattr(budget, "run_budget", run)
    app = fake_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_curve(pilot)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("enter")  # the sizes as offered
        await wait_for(pilot, lambda: "16 rows: train" in str(screen.query_one("#budget-progress").render()))
        await pilot.press("escape")
        await wait_for(pilot, stopped.is_set)
        await pilot.pause(0.1)
        assert not isinstance(app.screen, BudgetCurveScreen)
        assert not [n for n, severity in notes(app).items() if severity == "error"]
        app.budget_curve()  # the palette's, with no curve yet: said, nothing opens
        await wait_for(pilot, lambda: NONE_YET in notes(app))
        assert not isinstance(app.screen, BudgetCurveScreen)
        canned(home)
        app.budget_curve()  # no verdict to run one on
        await wait_for(pilot, lambda: isinstance(app.screen, BudgetCurveScreen))
        await pilot.press("r")
        await wait_for(
            pilot, lambda: "A curve runs on a verdict's rows: press c on a verdict with a prompt column." in notes(app)
        )
