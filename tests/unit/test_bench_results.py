"""The committed bench figures: the README's table is made from latest.json, paired figures are medians of
per-pair ratios, and a section measured on a busy machine is marked unreliable."""

import json

from bench.common import Result, sample
from bench.noise import BUSY, Calibration, Guard
from bench.report import END, LATEST, README, RESULTS, START, table, verdict, where


def test_the_readme_table_and_latest_md_are_made_from_latest_json():
    payload = json.loads(LATEST.read_text())
    made = table(payload)
    readme = README.read_text()
    assert readme.split(START, 1)[1].split(END, 1)[0] == "\n" + made
    assert (RESULTS / "latest.md").read_text() == made
    for row in payload["results"]:
        assert {"name", "value", "baseline", "ratio", "target", "met", "spread", "reliable"} <= set(row)
        assert row["value"] is not None or row["note"]  # a row that could not be measured says why


def test_a_paired_figure_is_the_median_of_the_ratios_of_back_to_back_runs():
    # the second pair ran while the machine was slow for both: its ratio is as good as the others
    subject, base = sample([10.0, 30.0, 11.0]), sample([10.0, 30.0, 10.0])
    row = Result.paired("x", subject, base, "s", "<= 1.05x", lambda r: r <= 1.05, "")
    assert row.ratio == 1.0 and row.met is True and row.spread == "1.00..1.10x over 3 pairs" and row.steady
    scattered = Result.paired("x", sample([10.0, 20.0, 10.0]), sample([10.0, 10.0, 10.0]), "s", "", bool, "")
    assert scattered.steady is False  # a neighbour during one pair: the section is run again, then unreliable
    assert row.value == 11.0 and row.baseline == 10.0


def test_the_guard_names_a_neighbour_apart_from_the_hosts_own_noise():
    from bench.noise import HOST, NEIGHBOUR, QUIET

    guard = Guard.__new__(Guard)
    guard.quietest = 1.0
    quiet = Calibration(1.05, 0.0, 0.3)
    assert guard.check(quiet, Calibration(1.1, 0.1, 0.4))[0] == QUIET
    assert guard.check(quiet, Calibration(1.3, 0.0, 0.4))[0] == HOST  # slower, with no process beside it
    kind, why = guard.check(quiet, Calibration(1.0, BUSY + 0.5, 2.0))
    assert kind == NEIGHBOUR and why.startswith("neighbour:") and "others 1.0 cores" in why
    assert guard.check(quiet, quiet, during=BUSY + 0.1)[0] == NEIGHBOUR  # one that came and went mid-section


def test_on_host_noise_a_row_stands_unless_its_spread_crosses_the_target():
    from bench.__main__ import judged
    from bench.noise import HOST, NEIGHBOUR, QUIET

    clear = Result.paired("a", sample([12.0, 14.0, 13.0]), sample([10.0] * 3), "s", ">= 1.1x", lambda r: r >= 1.1, "")
    across = Result.paired("b", sample([10.5, 12.0, 11.5]), sample([10.0] * 3), "s", ">= 1.1x", lambda r: r >= 1.1, "")
    assert (clear.crosses, across.crosses) == (False, True)
    assert judged(clear.to_dict(), HOST)["reliable"] is True
    shaky = judged(across.to_dict(), HOST)
    assert shaky["reliable"] is False and "scattered across the target" in shaky["noise"]
    assert judged(across.to_dict(), QUIET)["reliable"] is True  # on a quiet host a spread is just a spread
    assert judged(clear.to_dict(), NEIGHBOUR)["reliable"] is False
    row = {"value": 1.0, "met": False, "reliable": False, "noise": "neighbour"}
    assert verdict(row) == "unreliable (neighbour)" and verdict({**row, "reliable": True}) == "**no**"
    assert verdict({"value": None}) == "not measured"


def test_pairs_alternate_their_order():
    from bench.common import alternated

    order: list[str] = []
    alternated(lambda: order.append("A") or 1.0, lambda: order.append("B") or 1.0, repeats=4)
    assert "".join(order) == "AB" + "ABBAABBA"  # the warm-ups, then ABBA


def test_the_prose_around_the_table_carries_no_figure_typed_by_hand():
    import re

    from bench.report import summary

    text = README.read_text()
    section = text.split("## Performance", 1)[1].split("\n## ", 1)[0]
    prose = section.split(START)[0] + section.split(END)[1]
    figures = re.findall(r"\b\d+(?:\.\d+)?\s?(?:x|ms|s|tok/s|MB|GB|GFLOP/s)\b", prose)
    assert not figures, figures
    payload = json.loads(LATEST.read_text())
    assert summary(payload) in table(payload)  # the sentence under the table is made from the rows


def test_sections_run_again_on_another_machine_are_named_with_it():
    rows = [{"section": "training", "machine": "Intel"}, {"section": "generation"}, {"section": "startup"}]
    assert where({"machine": "AMD", "results": rows}) == "Intel (training) and AMD (generation, startup)"
    assert where({"machine": "AMD", "results": rows[1:]}) == "AMD"


def test_the_flops_row_is_the_tok_s_it_timed_times_its_flop_per_token():
    from pytest import approx

    from bench.limits import flops_row

    row = flops_row([220.0, 231.0, 240.0], 414e6, 148e9, 2_800_000)
    extra = row.extra
    assert extra["tok_per_s"] == 231.0 and extra["flop_per_token"] == 414e6
    assert row.value == approx(231.0 * 414e6 / 1e9) and extra["flop_per_s"] == approx(row.value * 1e9)
    assert row.baseline == approx(148.0) and row.ratio == approx(231.0 * 414e6 / 148e9)
    assert row.note.startswith("231 tok/s x 414.0 MFLOP per token")
    assert row.spread == f"{220 * 0.414:.3g}..{240 * 0.414:.3g} GFLOP/s over 3 epochs"
    assert row.steady and not row.crosses
    busy = flops_row([280.0, 211.0, 94.0], 414e6, 171e9, 2_800_000)  # a neighbour came and went mid-section
    assert busy.steady is False and busy.crosses is True  # so the guard runs it again, then marks it unreliable
    committed = next(r for r in json.loads(LATEST.read_text())["results"] if r["name"] == row.name)
    kept = committed["extra"]  # the committed row: its FLOP/s is its own tok/s times its FLOP/token
    assert committed["value"] * 1e9 == approx(kept["tok_per_s"] * kept["flop_per_token"], rel=1e-9)
    assert kept["tok_per_s"] == approx(sorted(kept["epochs_tok_per_s"])[len(kept["epochs_tok_per_s"]) // 2])


def test_the_decode_row_is_against_a_copy_on_the_decodes_own_threads():
    from pytest import approx

    from bench.limits import bandwidth_row

    row = bandwidth_row([20.0, 22.0, 23.0], 390_000_000, copy=28e9, threads=1, wide=30e9)
    assert row.baseline == approx(28.0) and row.value == approx(22.0 * 0.39)  # not the all-core copy's 30
    assert row.extra["decode_threads"] == row.extra["copy_threads"] == 1
    assert "copy on the same 1 thread(s) (30.0 GB/s on all" in row.note
    committed = next(r for r in json.loads(LATEST.read_text())["results"] if r["name"] == row.name)
    kept = committed["extra"]
    assert kept["decode_threads"] == kept["copy_threads"]
    assert committed["value"] * 1e9 == approx(kept["tok_per_s"] * kept["bytes_per_token"], rel=1e-9)


def test_a_variable_length_row_names_trainer_grouping_only_where_its_megabatch_holds_several_batches():
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from bench.training import BATCH, BIG_BATCH, BIG_STEPS, GROUPED, RANDOM, STEPS, against, megabatch

    lengths = list(range(10, 10 + 200))
    for n, batch in [(STEPS * BATCH, BATCH), (BIG_STEPS * BIG_BATCH, BIG_BATCH), (48, 16), (200, 2), (10, 4)]:
        default = get_length_grouped_indices(lengths[:n], batch, generator=torch.Generator().manual_seed(0))
        ours = get_length_grouped_indices(
            lengths[:n], batch, megabatch(n, batch) // batch, generator=torch.Generator().manual_seed(0)
        )
        assert default == ours, (n, batch)  # the same megabatch as Trainer's own default
    assert megabatch(STEPS * BATCH, BATCH) == 3 * BATCH and against(STEPS * BATCH, BATCH)[:2] == (GROUPED, True)
    label, grouped, how = against(BIG_STEPS * BIG_BATCH, BIG_BATCH)  # 48 examples at batch 8: one batch
    assert (label, grouped) == (RANDOM, False) and "is one batch" in how
