"""An eval for CI: the JUnit XML parses, with a testcase per item per variant and a failure carrying the
expected and given answers; the Markdown summary has pass@1, pass^k when items repeat, and the items fixed and
broken against the pinned baseline."""

import xml.etree.ElementTree as ET

from core.evals.ci import pass_hat_k, summary_markdown, write_junit
from core.evals.plan import EvalRequest, Variant
from core.evals.runner import run_eval
from core.evals.stored import baseline_diff
from tests.unit.test_evals import PROMPT, ScriptedBackend


def test_junit_and_the_markdown_summary(home, tmp_path):
    request = EvalRequest("demo", "eval", grader="labels", limit=12)
    summary = run_eval(home, request, [Variant("no prompt", None), Variant("senti", PROMPT)], ScriptedBackend())
    root = ET.parse(write_junit(summary, tmp_path / "junit.xml")).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [v.label for v in summary.variants]
    for suite, variant in zip(suites, summary.variants):
        cases = suite.findall("testcase")
        failures = [c for c in cases if c.find("failure") is not None]
        assert len(cases) == 12 and len(failures) == 12 - variant.passed == int(suite.get("failures"))
    message = suites[0].find("testcase/failure").get("message")
    assert message.startswith("expected 'positive', got 'A cow moos.'") or message.startswith("expected 'negative'")
    repeated = run_eval(
        home,
        EvalRequest("demo", "eval", grader="labels", limit=12, repeat=3),
        [Variant("senti", PROMPT)],
        ScriptedBackend(),
    )
    assert pass_hat_k(repeated, 0) is not None and pass_hat_k(summary, 0) is None
    text = summary_markdown(repeated, "The verdict.", baseline_diff(repeated, summary, 1), f"{summary.id}:1")
    assert "| variant | pass@1 | 95% interval | pass^3 |" in text and "The verdict." in text
    assert f"Against the pinned baseline {summary.id}:1:" in text and "fixed 0, broken 0" in text
