"""The verdict: winner, margin, and the exact McNemar test on a hand-computed case."""

import pytest

from core.errors import TunelabError
from core.evals.verdict import mcnemar_exact, verdict
from tests.seeded import eval_summary


def test_mcnemar_exact_matches_the_binomial_by_hand():
    # 9 discordant items split 8:1 -> P(X <= 1) = (1 + 9) / 512; two-sided: 20 / 512
    assert mcnemar_exact(8, 1) == pytest.approx(20 / 512)
    assert mcnemar_exact(1, 8) == mcnemar_exact(8, 1)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(19, 1) < 0.001


def cell(label, rate, prompt=None, adapter=None):
    return {"label": label, "pass_rate": rate, "prompt_id": prompt, "adapter": adapter}


def summary_of(cells, passes, status="done"):
    """`passes[v]` is the per-item pass list of variant v over items i0.."""
    items = {str(v): {f"i{i}": {"passed": ok} for i, ok in enumerate(p)} for v, p in enumerate(passes)}
    return eval_summary(cells, items, status=status)


def test_lora_alone_beats_the_best_prompt_with_a_real_difference():
    n = 20
    base = [False] * n
    prompt = [True] * 10 + [False] * 10
    lora = [True] * 19 + [False]
    both = [False] * n
    cells = [
        cell("no prompt | demo", 0.0),
        cell("senti@2 raw | demo", 0.5, prompt="p1"),
        cell("no prompt | demo + t1", 0.95, adapter="t1"),
        cell("senti@2 raw | demo + t1", 0.0, prompt="p1", adapter="t1"),
    ]
    v = verdict(summary_of(cells, [base, prompt, lora, both]))
    assert (v.winner, v.other, v.fixed, v.broken) == ((1, 0), (0, 1), 9, 0)
    assert v.sentence.startswith("The LoRA alone wins (no prompt | demo + t1): 95.0% vs 50.0% for the prompt alone")
    assert "+45.0 points, p = 0.004, a real difference (fixed 9, broken 0 of 20 items)" in v.sentence


def test_a_small_margin_is_not_called_real():
    prompt = [True] * 6 + [False] * 4
    lora = [True] * 5 + [False, True] + [False] * 3
    cells = [cell("p", 0.6, prompt="p1"), cell("l", 0.6, adapter="t1")]
    v = verdict(summary_of(cells, [prompt, lora]))
    assert "p = 1.00, not a real difference: these 10 items find a difference of" in v.sentence
    assert v.sentence.endswith(
        "80% of the time (fixed 1, broken 1 of 10 items; the power is computed at 51% discordance, "
        "the upper 95% bound of the 20% observed)."
    )
    assert v.detectable > 0.6


def test_what_the_items_could_show_is_not_read_off_the_agreement_that_happened():
    """Post-hoc power flatters: two cells that happened to agree on 118 of 120 items would "find 7 points". The
    sentence is computed at the planner's 30% discordance (or the upper bound of the one seen, when higher)."""
    from core.evals.stats import detectable

    prompt = [True] * 60 + [False] * 60
    lora = [*prompt[:59], False, True, *prompt[61:]]
    cells = [cell("p", 0.5, prompt="p1"), cell("l", 0.5, adapter="t1")]
    v = verdict(summary_of(cells, [prompt, lora]))
    assert v.detectable == round(detectable(120, 0.3), 4) > detectable(120, round(2 / 120, 3)) + 0.05
    assert "the power is computed at the planned 30% discordance (2% observed)" in v.sentence


def test_a_partial_or_single_cell_eval_gives_no_verdict():
    cells = [cell("a", 0.5), cell("b", 0.6, prompt="p")]
    with pytest.raises(TunelabError, match="is cancelled: a partial eval gives no verdict"):
        verdict(summary_of(cells, [[True], [True]], status="cancelled"))
    with pytest.raises(TunelabError, match="has one cell"):
        verdict(summary_of(cells[:1], [[True]]))
