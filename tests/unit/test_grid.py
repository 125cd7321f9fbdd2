"""The comparison grid: rows are model variants, columns prompts; seeds of one LoRA share a cell."""

import pytest

from core.evals.grid import build_grid
from core.evals.verdict import verdict
from tests.seeded import eval_summary


def variant(rate, prompt=None, adapter=None, latency=0.01, prompt_tokens=10.0):
    return {
        "label": f"{prompt or 'no prompt'} | demo" + (f"+{adapter}" if adapter else ""),
        "pass_rate": rate, "ci": [max(0.0, rate - 0.1), min(1.0, rate + 0.1)], "model": "demo",
        "prompt_id": prompt, "prompt_name": "senti" if prompt else None, "mode": "raw" if prompt else None,
        "adapter": adapter, "mean_latency_s": latency, "mean_prompt_tokens": prompt_tokens,
        "mean_completion_tokens": 2.0,
    }  # fmt: skip


def summary_of(variants, passes):
    return eval_summary(
        variants, {str(v): {f"i{i}": {"passed": ok} for i, ok in enumerate(p)} for v, p in enumerate(passes)}
    )


def test_rows_are_model_variants_and_columns_prompts_each_cell_in_its_place():
    summary = summary_of(
        [variant(0.0), variant(0.5, "p1"), variant(0.75, adapter="t1"), variant(0.25, "p1", "t1")],
        [[False] * 4, [True, True, False, False], [True, True, True, False], [True, False, False, False]],
    )
    grid = build_grid(summary, {"t1": {"trained_on": "as is", "cost": {"train_s": 12.0}}})
    assert [r.label for r in grid.rows] == ["demo (base)", "demo+t1 as is"]
    assert [c.label for c in grid.cols] == ["no prompt", "senti@p1 raw"]
    assert grid.cell(1, 0).pass_rate == 0.75 and grid.cell(0, 1).pass_rate == 0.5
    assert grid.rows[1].cost == {"train_s": 12.0} and grid.rows[0].adapters == ()
    assert grid.diff(grid.cell(1, 0), grid.cell(0, 1)) == (["i2"], [])


def test_a_prompt_is_priced_against_no_prompt_in_the_same_row():
    summary = summary_of(
        [variant(0.0, latency=0.010, prompt_tokens=12.0), variant(0.5, "p1", latency=0.014, prompt_tokens=30.0)],
        [[False], [True]],
    )
    grid = build_grid(summary)
    assert grid.cols[1].cost == {"extra_prompt_tokens": 18.0, "added_latency_s": 0.004}
    assert grid.cols[0].cost == {}


def test_seeds_of_one_lora_share_a_row_with_mean_spread_and_majority_items():
    seeds = [variant(rate, adapter=f"t{k}") for k, rate in enumerate([0.5, 0.75, 1.0])]
    passes = [[True, True, False, False], [True, True, True, False], [True, True, True, True]]
    summary = summary_of([variant(0.25), *seeds], [[True, False, False, False], *passes])
    same = {f"t{k}": {"group": "g", "trained_on": "as is"} for k in range(3)}
    grid = build_grid(summary, same)
    assert len(grid.rows) == 2 and grid.rows[1].adapters == ("t0", "t1", "t2")
    assert grid.rows[1].label == "demo+LoRA as is ×3 seeds"
    cell = grid.cell(1, 0)
    assert cell.pass_rate == pytest.approx(0.75) and cell.spread == pytest.approx(0.25)
    assert cell.variants == (1, 2, 3)
    assert cell.passed == {"i0": True, "i1": True, "i2": True, "i3": False}  # 2 of 3 seeds pass i2
    assert cell.scores == {"i0": 1.0, "i1": 1.0, "i2": pytest.approx(2 / 3), "i3": pytest.approx(1 / 3)}
    assert cell.ci[0] < 0.75 < cell.ci[1] == 1.0  # over the 4 items (seeds share an item), not 12 trials
    v = verdict(summary, grid)  # one verdict for the three seeds together, never one lucky run
    assert v.winner == (1, 0) and (v.fixed, v.broken) == (2, 0)
    assert v.sentence.startswith("The LoRA alone wins (no prompt | demo+LoRA as is ×3 seeds): 75.0% vs 25.0%")


def test_without_groups_every_adapter_is_a_row_of_its_own():
    summary = summary_of([variant(0.5, adapter="a"), variant(0.6, adapter="b")], [[True], [True]])
    assert len(build_grid(summary).rows) == 2


def test_each_row_says_its_kind_and_every_reader_goes_by_it():
    """A row's kind is set where it is built: the local base, a LoRA (its seeds one row), a served model,
    and a served model's own LoRA. The verdict's approaches, the cost lines and `compare --json` read the
    kind, never the cost's keys: a served row whose endpoint gave no cost details is still a served row."""
    import json
    from dataclasses import asdict

    from core.evals.grid import RowKind
    from core.evals.report import costs

    url = "http://127.0.0.1:9/v1#ok"
    summary = summary_of(
        [
            variant(0.25),
            variant(0.5, adapter="t0"),
            variant(0.75, adapter="t1"),
            {**variant(0.5), "model": url, "label": f"no prompt | {url}"},
            {**variant(0.6, adapter="ok-lora"), "model": url, "label": f"no prompt | {url}+ok-lora"},
        ],
        [[True, False], [True, True], [True, True], [True, False], [True, True]],
    )
    seeds = {f"t{k}": {"group": "g", "trained_on": "as is", "cost": {"train_s": 3.0}} for k in range(2)}
    grid = build_grid(summary, seeds, {url: {}})  # an endpoint that names no price, nor itself
    assert [row.kind for row in grid.rows] == [RowKind.BASE, RowKind.LORA, RowKind.SERVED, RowKind.LORA]
    assert grid.rows[1].adapters == ("t0", "t1")  # seeds of one LoRA stay one LoRA row
    assert [grid.approach(grid.cell(r, 0)) for r in range(4)] == [(False, False), (False, True), (False, False), (False, True)]  # fmt: skip
    lines = costs(grid)
    assert lines[0] == "demo+LoRA as is ×2 seeds: trained 3 s on ? (each of 2 seeds)"
    assert lines[1].startswith(f"{url} (base): served by {url}, ") and "per call" in lines[1]
    assert not any(line.startswith("demo (base)") for line in lines)  # a local base costs nothing to list
    assert [json.loads(json.dumps(asdict(row)))["kind"] for row in grid.rows] == ["base", "lora", "served", "lora"]
    assert not RowKind.OPTIMIZED.trained and RowKind.DISTILLED.trained  # reserved: a prompt, a LoRA
