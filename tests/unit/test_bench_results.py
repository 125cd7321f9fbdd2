"""The committed bench figures: the README's table is made from latest.json, paired figures are medians of
per-pair ratios, and a section measured on a busy machine is marked unreliable."""

import json

from bench.common import Result, sample
from bench.noise import BUSY, Calibration, Guard
from bench.report import END, LATEST, README, RESULTS, START, table, verdict


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


def test_a_section_is_unreliable_when_the_calibration_drifts_or_neighbours_are_busy():
    guard = Guard.__new__(Guard)
    guard.quietest = 1.0
    quiet = Calibration(1.05, 0.0, 0.3)
    assert guard.check(quiet, Calibration(1.1, 0.1, 0.4))[0] is True
    assert guard.check(quiet, Calibration(1.3, 0.0, 0.4))[0] is False  # the loop ran 30% slower
    reliable, why = guard.check(quiet, Calibration(1.0, BUSY + 0.5, 2.0))
    assert reliable is False and "others 1.0 cores" in why
    row = {"value": 1.0, "met": False, "reliable": False}
    assert verdict(row) == "unreliable" and verdict({**row, "reliable": True}) == "**no**"
    assert verdict({"value": None}) == "not measured"
