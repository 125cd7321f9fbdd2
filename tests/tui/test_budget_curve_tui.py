"""The data-budget curve's screen, from the verdict screen's key and the palette: a canned curve, no model."""

import random

from textual.widgets import DataTable

from core.evals.budget_curve import Arm, judge_curve, point
from core.workbench.budget import save_curve
from tests.seeded import comparison_eval, finished_run
from tests.tui.test_verdict_tui import notes, open_verdict
from tests.tui_helpers import fake_app, wait_for
from tui.screens.budget_curve import NONE_YET, BudgetChart, BudgetCurveScreen


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
        await open_verdict(pilot)
        await pilot.press("c")  # no curve yet: said, and the verdict stays
        await wait_for(pilot, lambda: NONE_YET in notes(app))
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
