"""The house rules a reader relies on: no module in core/ or tui/ over 500 lines, no function over 80."""

import ast
import re
from pathlib import Path

from tests.conftest import REPO

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def sources() -> list[Path]:
    return sorted(p for part in ("core", "tui") for p in (REPO / part).rglob("*.py"))


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long == {}


def test_no_function_is_over_80_lines():
    long = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def read_by_key(pattern: re.Pattern[str]) -> list[str]:
    """Each line of core/ or tui/ (the models' own module aside) that `pattern` finds, as `path:line: text`."""
    found = []
    for path in sources():
        if path.name == "schemas.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    return found


def test_an_eval_summary_is_read_by_its_fields_never_by_string_keys():
    """The eval summary is an `EvalSummary` (core/storage/schemas.py) from load to screen: a field renamed there
    is a type error, not a KeyError at run time. Names bound to a summary are never subscripted or `.get`."""
    names = "|".join(re.escape(name) for name in ("summary", "baseline[0]", "pinned", "headline"))
    assert read_by_key(re.compile(rf"(?:{names})(?:\[[\"']|\.get\()")) == []


def test_a_run_status_and_a_graded_row_are_read_by_their_fields_never_by_keys():
    """A run's status is a `RunStatus` from `Runs.status` to the monitor, the CLI and the verdict's costs, and a
    graded call a `GradedRow` from grading to the summary, the parity check and the eval pane's cells (both in
    core/storage/schemas.py): a field renamed there is a type error, not a KeyError at run time. Names bound to
    one (`status`, `graded`) are never subscripted or `.get`, by a string or any other key."""
    assert read_by_key(re.compile(r"(?<!\w)(?:status|graded)(?:\[|\.get\()")) == []


def test_a_pane_never_calls_the_screen_and_the_main_screen_stays_a_hub():
    """Panes talk by messages (`tui/messages.py`: `Reveal`, `Announce`, `WorkbenchFailed`, ...): no widget
    reaches for the screen it is on to call it, and the main screen, where those messages land, stays well
    under the size limit (what its keys start is `tui/workflows.py`)."""
    import re

    reach = re.compile(r"\bself\.(main|screen)\b|\btunelab\.main\b|\bapp\.main\b")
    found = [
        f"{path.relative_to(REPO)}:{i}: {line.strip()}"
        for path in sorted((REPO / "tui" / "widgets").glob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if reach.search(line)
    ]
    assert found == []
    assert len((REPO / "tui" / "screens" / "main.py").read_text().splitlines()) <= 450
