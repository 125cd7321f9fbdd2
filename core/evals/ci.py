"""An eval for CI: a JUnit XML file (a testcase per item per variant, a failure carrying the expected and the
given answer) that CI systems read as tests, and a Markdown summary (the variants with pass@1, and pass^k
when items repeat: the share of items every repeat passed, the verdict and the items fixed and broken
against the pinned baseline), as a pull-request comment or `$GITHUB_STEP_SUMMARY` holds it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from core.storage.atomic import write_atomic
from core.storage.schemas import EvalSummary


def pass_hat_k(summary: EvalSummary, variant: int) -> float | None:
    """pass^k: the share of items whose every repeat passed; None for a single run."""
    if summary.repeat <= 1:
        return None
    scores = summary.scores(variant)
    return sum(score.fraction == 1.0 for score in scores.values()) / len(scores) if scores else 0.0


def write_junit(summary: EvalSummary, path: Path) -> Path:
    suites = ET.Element("testsuites", name=f"tunelab eval {summary.id}")
    for vi, variant in enumerate(summary.variants):
        scores = summary.scores(vi)
        failed = sum(not s.passed for s in scores.values())
        suite = ET.SubElement(
            suites, "testsuite", name=variant.label, tests=str(len(scores)), failures=str(failed), errors="0"
        )
        for item, score in scores.items():
            case = ET.SubElement(suite, "testcase", classname=variant.label, name=item)
            if not score.passed:
                given = " ".join(score.majority.split())[:500]
                failure = ET.SubElement(
                    case, "failure", message=f"expected {score.expected!r}, got {given!r}", type=summary.grader
                )
                failure.text = f"grader {summary.grader}: passed {score.fraction:.0%} of its repeats"
    ET.indent(suites)
    write_atomic(path, ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")
    return path


def summary_markdown(
    summary: EvalSummary, verdict: str | None, against: list[dict[str, Any]] | None, baseline: str | None
) -> str:
    """The Markdown a pull request's comment holds: the variants, the verdict, and what changed."""
    hat = summary.repeat > 1
    lines = [f"### tunelab eval `{summary.id}` on `{summary.scope}` ({summary.n_items} items, {summary.grader})", ""]
    lines += ["| variant | pass@1 | 95% interval |" + (f" pass^{summary.repeat} |" if hat else "")]
    lines += ["|---|---|---|" + ("---|" if hat else "")]
    for vi, v in enumerate(summary.variants):
        row = f"| `{v.label}` | {v.pass_rate:.1%} | {v.ci[0]:.0%}-{v.ci[1]:.0%} |"
        if hat:
            row += f" {pass_hat_k(summary, vi) or 0.0:.1%} |"
        lines.append(row)
    if verdict:
        lines += ["", verdict]
    if against and baseline:
        lines += ["", f"Against the pinned baseline {baseline}:"]
        for v, diff in zip(summary.variants, against):
            fixed, broken = diff["fixed"], diff["broken"]
            lines.append(
                f"- `{v.label}`: {diff['delta'] * 100:+.1f} points, fixed {len(fixed)}, broken {len(broken)}"
                + (f" (broken: {', '.join(broken[:10])})" if broken else "")
            )
    return "\n".join(lines) + "\n"


ITEM_COLUMNS = ("variant", "item", "passed", "pass share", "expected", "output")


def report(root: Path, summary: EvalSummary, report_to: str, report_dir: str | None) -> str:
    """The eval in a tracker (`--report-to`), under its id: each variant's pass rate and its 95% interval, every
    item's result per variant as a table, and what was asked as the config. Returns where it went."""
    from core.storage import trackers

    config = {**summary.request, "scope": summary.scope, "n_items": summary.n_items, "grader": summary.grader}
    config["variants"] = [v.label for v in summary.variants]
    rates: dict[str, float] = {}
    rows = []
    for vi, v in enumerate(summary.variants):
        rates |= {f"pass_rate/{v.label}": v.pass_rate, f"ci_low/{v.label}": v.ci[0], f"ci_high/{v.label}": v.ci[1]}
        rows += [
            (v.label, item, s.passed, s.fraction, s.expected, " ".join(s.majority.split())[:200])
            for item, s in summary.scores(vi).items()
        ]
    where = trackers.folder(root / "evals" / summary.id, summary.id, report_dir)
    with trackers.open_tracker(report_to, summary.id, config, where) as tracker:
        tracker.scalars(rates, 0)
        tracker.table("items", ITEM_COLUMNS, rows, 0)
        return tracker.shown
